//go:build !(linux || darwin)

package model

import "io/fs"

// readConfig reads name with fs.ReadFile: discover refused links and special files before.
func (d dirFS) readConfig(name string) ([]byte, error) { return fs.ReadFile(d.FS, name) }
