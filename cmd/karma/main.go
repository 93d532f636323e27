// Command karma is the CLI: build and query the component graph, publish configs, and (in later
// stages) run the pipeline. Exit codes: 0 ok, 1 failure, 2 usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, args []string) int { return runWith(ctx, &globals{}, args) }

// runWith is run with preset globals (tests set their hooks there).
func runWith(ctx context.Context, g *globals, args []string) int {
	cmd := newRootCmdWith(g)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(cmd.ErrOrStderr(), "karma: %v\nRun '%s --help' for usage.\n", err, ue.cmd)
		return 2
	}
	var se *silentError
	if !errors.As(err, &se) {
		fmt.Fprintf(cmd.ErrOrStderr(), "karma: %v\n", err)
	}
	return 1
}

// usageError is a bad command line: exit code 2.
type usageError struct {
	cmd string
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// silentError is a failure already reported to the user (e.g. diagnostics printed): exit 1.
type silentError struct{ err error }

func (e *silentError) Error() string { return e.err.Error() }
