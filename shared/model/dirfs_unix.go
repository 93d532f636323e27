//go:build linux || darwin

package model

import (
	"errors"
	"io/fs"
	"syscall"
)

// readConfig opens name under the directory without following a symbolic link (openNoLinks)
// and without blocking (a FIFO put in a file's place), checks that it is a regular file, and
// reads it to the end into a buffer sized by fstat.
func (d dirFS) readConfig(name string) ([]byte, error) {
	if d.real == "" || !fs.ValidPath(name) { // (os.DirFS("") refuses every name too)
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	var fd int
	err := eintr(func() (err error) {
		fd, err = openNoLinks(d.real + "/" + name)
		return err
	})
	switch {
	case errors.Is(err, syscall.ELOOP):
		return nil, &fs.PathError{Op: "open", Path: name, Err: errLink}
	case err != nil:
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := eintr(func() error { return syscall.Fstat(fd, &st) }); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errNotRegular}
	}
	size := st.Size
	if int64(int(size+1)) != size+1 {
		size = 0 // too large for a slice here: let the buffer grow
	}
	data, err := readToEnd(fd, size)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return data, nil
}

// readToEnd reads fd to its end into a buffer of one byte more than size, the file's size when
// it was looked at, so that the read that fills it is followed by the one that finds the end;
// should the file have grown meanwhile, the buffer grows with it.
func readToEnd(fd int, size int64) ([]byte, error) {
	data := make([]byte, 0, size+1)
	for {
		var n int
		err := eintr(func() (err error) {
			n, err = syscall.Read(fd, data[len(data):cap(data)])
			return err
		})
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return data, nil
		}
		data = data[:len(data)+n]
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
}

// eintr runs fn again while it is interrupted by a signal (as package os does).
func eintr(fn func() error) error {
	for {
		if err := fn(); err != syscall.EINTR {
			return err
		}
	}
}

// openFlags open a config file to read it, never blocking on what is not a regular file.
const openFlags = syscall.O_RDONLY | syscall.O_CLOEXEC | syscall.O_NONBLOCK

// openLastNoLink opens path without following a symbolic link at its last element (ELOOP).
func openLastNoLink(path string) (int, error) {
	return syscall.Open(path, openFlags|syscall.O_NOFOLLOW, 0)
}
