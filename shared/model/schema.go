package model

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/usekarma/karma/shared/redact"
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
	doc := withoutKarma(cfg)
	err := e.schema.Validate(any(doc))
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
			msg := u.Error.String()
			if redact.SecretAt(doc, ptr) {
				msg = withoutSecret(msg, doc, ptr, u.KeywordLocation)
			}
			msg = withoutSecretsIn(msg, doc, ptr)
			out = append(out, Diagnostic{Severity: SevError, Code: CodeSchema, Pointer: ptr,
				Message: msg + " (schema " + path.Base(path.Dir(e.file)) + "/" + SchemaFile + ")"})
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

// withoutSecret is a schema's message about the value at ptr, under a secret-named key
// (redact.SecretAt), without that value: the schema library quotes the value it refuses
// ("'hunter2' does not match pattern …", "maximum: got 31,337"), and a diagnostic is shown
// (GET /components, karma graph build) and recorded (a change set rejected for it,
// change.resolved). A quoted string is replaced by redact.Placeholder; a message about a number,
// or that still holds the string somehow, says only which rule the value breaks.
func withoutSecret(msg string, doc any, ptr, keyword string) string {
	v, ok := valueAt(doc, ptr)
	if !ok {
		return msg
	}
	hidden := fmt.Sprintf("the value breaks the schema's %s (the value is not shown: %s is named like a secret)", keyword, ptr)
	switch x := v.(type) {
	case string:
		msg = strings.ReplaceAll(msg, quoteLikeSchema(x), "'"+redact.Placeholder+"'")
		if x != "" && strings.Contains(msg, x) {
			return hidden
		}
		return msg
	case nil, bool, map[string]any, []any:
		return msg // the library quotes no such value
	}
	return hidden // a number, written in the message in the library's own way ("31,337")
}

// withoutSecretsIn is a schema's message about the value at ptr without the secrets the value
// holds (redact.Secrets: under secret-named keys or in name/value entries below it, in JSON held
// in a string, DB_PASSWORD=… in a script; of 4 bytes or more, as shared/terraform scrubs them)
// nor those in the message's own text (a URL's password,
// whatever its key: redact.Text).
func withoutSecretsIn(msg string, doc any, ptr string) string {
	if v, ok := valueAt(doc, ptr); ok {
		for _, s := range redact.Secrets(v) {
			for _, form := range []string{s, strings.Trim(quoteLikeSchema(s), "'")} {
				if len(form) >= 4 { // shorter, it would be replaced all over the message
					msg = strings.ReplaceAll(msg, form, redact.Placeholder)
				}
			}
		}
	}
	msg, _ = redact.Text(msg)
	return msg
}

// quoteLikeSchema quotes s as the schema library's messages do.
func quoteLikeSchema(s string) string {
	q := strconv.Quote(s)
	q = strings.ReplaceAll(q, `\"`, `"`)
	q = strings.ReplaceAll(q, `'`, `\'`)
	return "'" + q[1:len(q)-1] + "'"
}

// valueAt is the value at JSON pointer ptr (RFC 6901) in doc.
func valueAt(doc any, ptr string) (any, bool) {
	if ptr == "" || ptr == "/" {
		return doc, true
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch x := doc.(type) {
		case map[string]any:
			v, ok := x[tok]
			if !ok {
				return nil, false
			}
			doc = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			doc = x[i]
		default:
			return nil, false
		}
	}
	return doc, true
}
