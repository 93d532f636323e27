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
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

type invalidSchemaJSON struct{ err error }

func (e *invalidSchemaJSON) Error() string { return "invalid JSON: " + e.err.Error() }
func (e *invalidSchemaJSON) Unwrap() error { return e.err }
