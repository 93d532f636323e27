//go:build linux || darwin

package model

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkReadConfig compares, per file, reading a component's config.json as the build did
// before (discover's Lstat, then fs.ReadFile on os.DirFS, as the floor reads) with the build's
// read now (the same Lstat, then readConfig): go test -run '^$' -bench ReadConfig ./shared/model/
func BenchmarkReadConfig(b *testing.B) {
	dir := b.TempDir()
	const files = 1000
	names := make([]string, files)
	for i := range names {
		names[i] = fmt.Sprintf("iac/prod/type-%02d/c-%04d/config.json", i%20, i)
		full := filepath.Join(dir, filepath.FromSlash(names[i]))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		cfg := fmt.Sprintf(`{"karma":{"extends":"type-%02d/defaults"},"name":"c-%04d","size":%d,"tags":{"team":"platform"}}`, i%20, i, i)
		if err := os.WriteFile(full, []byte(cfg), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	d := newDirFS(dir)
	for _, read := range []struct {
		name string
		fn   func(string) ([]byte, error)
	}{
		{"os.DirFS", func(name string) ([]byte, error) { return fs.ReadFile(d.FS, name) }},
		{"readConfig", d.readConfig},
	} {
		b.Run(read.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				name := names[i%files]
				i++
				if _, err := fs.Lstat(d, name); err != nil {
					b.Fatal(err)
				}
				if _, err := read.fn(name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
