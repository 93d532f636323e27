package main

import (
	"os"
	"os/user"
)

// localUser names who runs the CLI, for provenance and audit: KARMA_ACTOR when set (CI systems
// set it to the pipeline's identity), else the OS user.
func localUser() string {
	if a := os.Getenv("KARMA_ACTOR"); a != "" {
		return a
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}
