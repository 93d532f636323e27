//go:build linux || darwin

package model

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// dirFS is os.DirFS as far as the fs package can tell: the standard library's own checks.
func TestDirFSIsAFileSystem(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "iac/prod/vpc/core"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "iac/prod/vpc/core/config.json"), []byte(`{"cidr":"10.0.0.0/16"}`), 0o644))
	must(os.WriteFile(filepath.Join(dir, "karma.json"), []byte(`{}`), 0o644))
	must(os.Symlink("karma.json", filepath.Join(dir, "link.json")))
	if err := fstest.TestFS(newDirFS(dir), "iac/prod/vpc/core/config.json", "karma.json", "link.json"); err != nil {
		t.Fatal(err)
	}
}

// readConfig reads a regular file whole, whatever its size, into bytes of the caller's.
func TestReadConfigReadsWholeFiles(t *testing.T) {
	dir := t.TempDir()
	d := newDirFS(dir)
	for _, size := range []int{0, 1, 511, 4096, 70_000, 1 << 20} {
		want := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		if err := os.WriteFile(filepath.Join(dir, "config.json"), want, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := d.readConfig("config.json")
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: read %d, not the file's content", size, len(got))
		}
	}
	if _, err := d.readConfig("missing/config.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v, want ErrNotExist", err)
	}
	if _, err := d.readConfig("../config.json"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("a path out of the directory: %v, want ErrInvalid", err)
	}
}

// A file that grew since its size was looked at is read to its end all the same.
func TestReadToEndGrowsItsBuffer(t *testing.T) {
	want := bytes.Repeat([]byte("0123456789abcdef"), 70_000/16)
	name := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(name, want, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{0, 3, int64(len(want)) - 1} {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readToEnd(int(f.Fd()), size)
		f.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("size %d said, %d read: %d bytes (%v)", size, len(want), len(got), err)
		}
	}
}

// Whatever takes a config file's place after discover looked at it is refused, not followed or
// waited on: a symbolic link (its target could lie outside the repository) and a FIFO (a read
// would block until something writes it).
func TestReadConfigRefusesLinksAndSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(secret, []byte(`{"token":"hunter2"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := newDirFS(dir)
	for name, want := range map[string]error{"link.json": errLink, "fifo.json": errNotRegular} {
		done := make(chan error, 1)
		go func() {
			data, err := d.readConfig(name)
			if err == nil {
				err = errors.New("read " + string(data))
			}
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, want) || !strings.Contains(err.Error(), name) {
				t.Errorf("%s: %v, want %q naming the file", name, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: readConfig blocked", name)
		}
	}
}

// What Load reads goes through readConfig: the component files (reader.read) and Repo.ReadFile.
// A FIFO put in a config file's place after discover looked is reported, not waited on.
func TestLoadReadsConfigsThroughReadConfig(t *testing.T) {
	dir := t.TempDir()
	file := "iac/prod/vpc/core/config.json"
	if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(file)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(`{"cidr":"10.0.0.0/16"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.fsys.(configReader); !ok {
		t.Fatalf("Load reads through %T, not a configReader", r.fsys)
	}
	if err := os.Remove(filepath.Join(dir, file)); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, file), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 2)
	go func() {
		rd := &reader{fsys: r.fsys}
		if d := rd.read(newParser(), &source{file: file}); d != nil {
			done <- d.Message
		} else {
			done <- "read"
		}
		if _, err := r.ReadFile(file); err != nil {
			done <- err.Error()
		} else {
			done <- "read"
		}
	}()
	for _, what := range []string{"reader.read", "Repo.ReadFile"} {
		select {
		case msg := <-done:
			if !strings.Contains(msg, errNotRegular.Error()) {
				t.Errorf("%s of a FIFO: %q, want %q", what, msg, errNotRegular)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s blocked on a FIFO", what)
		}
	}
}

// recordingFS is a MapFS that reads through readConfig, noting what it read so.
type recordingFS struct {
	fstest.MapFS
	read []string
}

func (r *recordingFS) readConfig(name string) ([]byte, error) {
	r.read = append(r.read, name)
	return fs.ReadFile(r.MapFS, name)
}

// karma.json and the account files are read through readConfig too (readRegular), after their
// Lstat.
func TestSettingsReadThroughReadConfig(t *testing.T) {
	fsys := &recordingFS{MapFS: fstest.MapFS{SettingsFile: {Data: []byte(`{"prefix":"/x"}`)}}}
	if _, err := LoadSettingsFS(fsys, Settings{}); err != nil {
		t.Fatal(err)
	}
	if len(fsys.read) != 1 || fsys.read[0] != SettingsFile {
		t.Errorf("read through readConfig: %v, want [%s]", fsys.read, SettingsFile)
	}
}
