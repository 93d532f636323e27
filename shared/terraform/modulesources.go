package terraform

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrModuleOutside refuses a module call that makes terraform read a module from the disk
// outside the component's modules folder: a local source leaving it ("../../other", which from
// <modules root>/<tree id>/<type> reaches another commit's modules, or any folder), or an
// absolute path or file:// URL, which terraform copies from the disk. What is deployed would
// not be the commit the lineage names.
var ErrModuleOutside = errors.New("module source outside the commit's modules folder")

// modulesManifest is what `terraform init` records of the modules it installed
// (.terraform/modules/modules.json).
type modulesManifest struct {
	Modules []struct {
		Key    string `json:"Key"`
		Source string `json:"Source"`
		Dir    string `json:"Dir"`
	} `json:"Modules"`
}

// checkModuleSources reads which folder terraform loads each module of Root from
// (.terraform/modules/modules.json, written by init) and refuses any outside ws.Confine (the
// commit's modules folder, materialized) and outside Root/.terraform/modules (remote sources,
// downloaded there); a module copied there from a local path (an absolute source, a file://
// URL) is refused too. Without Confine nothing is checked.
func checkModuleSources(ws Workspace) error {
	if ws.Confine == "" {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(ws.Root, ".terraform", "modules", "modules.json"))
	if err != nil {
		return fmt.Errorf("reading the modules terraform installed: %w", err)
	}
	var m modulesManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("reading the modules terraform installed: %w", err)
	}
	modules := realDir(ws.Confine)
	installed := realDir(filepath.Join(ws.Root, ".terraform", "modules"))
	var errs []error
	for _, mod := range m.Modules {
		if mod.Key == "" {
			continue // the root module: Root itself, written by Prepare
		}
		name := "module." + strings.ReplaceAll(mod.Key, ".", ".module.")
		dir := mod.Dir
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(ws.Root, dir)
		}
		dir = realDir(dir)
		switch {
		case inside(dir, installed):
			if localSource(mod.Source) {
				errs = append(errs, fmt.Errorf("%s: source %q: %w (%s): copied from the disk, not the commit", name, mod.Source, ErrModuleOutside, modules))
			}
		case !inside(dir, modules):
			errs = append(errs, fmt.Errorf("%s: source %q reads %s: %w (%s)", name, mod.Source, dir, ErrModuleOutside, modules))
		}
	}
	return errors.Join(errs...)
}

// localSource reports whether a module source is a path on the disk that terraform copies: an
// absolute path or a file:// URL, with or without a forced getter ("file::/x", "git::file:///x").
func localSource(src string) bool {
	s := src
	if getter, rest, ok := strings.Cut(s, "::"); ok {
		if strings.EqualFold(getter, "file") {
			return true
		}
		s = rest
	}
	return filepath.IsAbs(s) || strings.HasPrefix(strings.ToLower(s), "file:")
}

// realDir is dir absolute, cleaned and with its symbolic links resolved when it exists.
func realDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return filepath.Clean(dir)
}

// inside reports whether path is dir or below it.
func inside(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
