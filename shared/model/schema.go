package model

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// SchemaFile is the optional JSON Schema (draft 2020-12 unless $schema says otherwise) a
// component type ships beside its module: <modules_dir>/<type>/config.schema.json.
const SchemaFile = "config.schema.json"

type schemaEntry struct {
	once   sync.Once
	schema *jsonschema.Schema
	err    error
	file   string
}

type schemaCache struct {
	mu sync.Mutex
	m  map[string]*schemaEntry
}

// modules is the folder that holds one folder per component type, and its name for messages:
// inside the repository (or commit) unless an override gave an absolute path.
func (r *Repo) modules() (fs.FS, string, error) {
	if filepath.IsAbs(r.Settings.ModulesDir) {
		return os.DirFS(r.Settings.ModulesDir), r.Settings.ModulesDir, nil
	}
	dir := path.Clean(filepath.ToSlash(r.Settings.ModulesDir))
	sub, err := fs.Sub(r.fsys, dir)
	return sub, dir, err
}

// Modules is the modules folder as it was read — the commit's tree, or the folder an absolute
// modules_dir names — and its name for messages (its path in the repository).
func (r *Repo) Modules() (fs.FS, string, error) {
	if r.fsys == nil && !filepath.IsAbs(r.Settings.ModulesDir) {
		return nil, "", fs.ErrNotExist
	}
	return r.modules()
}

func (r *Repo) schemaFor(typ string) *schemaEntry {
	r.schemas.mu.Lock()
	if r.schemas.m == nil {
		r.schemas.m = map[string]*schemaEntry{}
	}
	e, ok := r.schemas.m[typ]
	if !ok {
		e = &schemaEntry{}
		r.schemas.m[typ] = e
	}
	r.schemas.mu.Unlock()
	e.once.Do(func() {
		modules, dir, err := r.modules()
		if err != nil {
			e.err = err
			return
		}
		e.file = path.Join(dir, typ, SchemaFile)
		data, err := readRegular(modules, typ+"/"+SchemaFile)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			e.err = err
			return
		}
		url := "file:///" + strings.TrimPrefix(filepath.ToSlash(e.file), "/")
		e.schema, e.err = compileSchema(url, data)
	})
	return e
}

// validateSchema checks a resolved config (or a component's merged layers: the karma block is
// left out) against its type's schema, one diagnostic per failing
// location (JSON pointer).
func (r *Repo) validateSchema(typ string, cfg map[string]any) Diagnostics {
	e := r.schemaFor(typ)
	if e.err != nil {
		return Diagnostics{{Severity: SevError, Code: CodeSchema,
			Message: fmt.Sprintf("schema %s cannot be used: %v", e.file, e.err)}}
	}
	if e.schema == nil {
		return nil
	}
	err := e.schema.Validate(any(withoutKarma(cfg)))
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		if err != nil {
			return Diagnostics{{Severity: SevError, Code: CodeSchema, Message: err.Error()}}
		}
		return nil
	}
	var out Diagnostics
	var leaves func(u *jsonschema.OutputUnit)
	leaves = func(u *jsonschema.OutputUnit) {
		if len(u.Errors) == 0 && u.Error != nil {
			ptr := u.InstanceLocation
			if ptr == "" {
				ptr = "/"
			}
			out = append(out, Diagnostic{Severity: SevError, Code: CodeSchema, Pointer: ptr,
				Message: u.Error.String() + " (schema " + path.Base(path.Dir(e.file)) + "/" + SchemaFile + ")"})
		}
		for i := range u.Errors {
			leaves(&u.Errors[i])
		}
	}
	leaves(ve.BasicOutput())
	return out
}

// ValidateConfig checks a resolved config (compact JSON, as Component.Resolved holds it) against
// its type's schema in this repository: for instance another commit's config against today's
// schema (a rollback). No schema: no problem.
func (r *Repo) ValidateConfig(typ string, resolved []byte) Diagnostics {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(resolved))
	cfg, ok := doc.(map[string]any)
	if err != nil || !ok {
		return Diagnostics{{Severity: SevError, Code: CodeSchema, Message: fmt.Sprintf("the config is not a JSON object: %v", err)}}
	}
	return r.validateSchema(typ, cfg)
}
