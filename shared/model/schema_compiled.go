package model

// Compiled schemas, once per process. Every build reads each type's schema file again (from the
// commit or directory it builds), but compiling it is the expensive part: the resolve stage
// builds one repository per change event, and compiling the same schema each time was about a
// tenth of the pipeline's CPU. compileSchema keeps what it compiled under the schema's URL and a
// hash of its bytes, so a file that changes is compiled again and one that does not never is.
// A compiled *jsonschema.Schema is immutable, so one value serves concurrent validations.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// maxCompiledSchemas bounds the cache: past it, it starts again empty (a process that sees this
// many distinct schema files is rare, and recompiling is only slower).
const maxCompiledSchemas = 1024

type compiledKey struct {
	url  string
	hash [sha256.Size]byte
}

type compiledSchema struct {
	once   sync.Once
	schema *jsonschema.Schema
	err    error
}

var compiled = struct {
	mu sync.Mutex
	m  map[compiledKey]*compiledSchema
}{m: map[compiledKey]*compiledSchema{}}

// compileSchema returns data compiled as the schema at url (draft 2020-12 by default), compiling
// it only the first time this process sees these bytes at this URL. Errors are kept too: the
// same bytes fail the same way.
func compileSchema(url string, data []byte) (*jsonschema.Schema, error) {
	k := compiledKey{url: url, hash: sha256.Sum256(data)}
	compiled.mu.Lock()
	e := compiled.m[k]
	if e == nil {
		if len(compiled.m) >= maxCompiledSchemas {
			compiled.m = map[compiledKey]*compiledSchema{}
		}
		e = &compiledSchema{}
		compiled.m[k] = e
	}
	compiled.mu.Unlock()
	e.once.Do(func() { e.schema, e.err = compile(url, data) })
	return e.schema, e.err
}

func compile(url string, data []byte) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, &invalidSchemaJSON{err}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{}) // (the JSON Schema metaschemas are built in, and still load)
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

type invalidSchemaJSON struct{ err error }

func (e *invalidSchemaJSON) Error() string { return "invalid JSON: " + e.err.Error() }
func (e *invalidSchemaJSON) Unwrap() error { return e.err }

// errSchemaRef refuses a $ref to another document. The compiler's default loader reads any
// file:// URL from the disk of the machine running Karma: a schema's "$ref": "common.json" was
// looked for at /components/<type>/common.json there, not in the commit, and "$ref":
// "file:///etc/…" read whatever the server holds, so validation — what decides whether a commit
// deploys — depended on files outside the commit (and compiled results, cached by the schema's
// own bytes, would not follow them).
var errSchemaRef = errors.New("a schema may refer only within itself (\"$ref\": \"#/$defs/...\"): " +
	"another file or URL is not read, since what validates a commit must be the commit's own schema file")

// noLoader refuses every document a schema refers to (errSchemaRef).
type noLoader struct{}

func (noLoader) Load(string) (any, error) { return nil, errSchemaRef }
