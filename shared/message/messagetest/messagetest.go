// Package messagetest checks messages produced in tests against the wire contract: the JSON
// Schema of their type and version under schemas/, and the codec. Only tests import it.
package messagetest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/usekarma/karma/shared/message"
)

const schemaBase = "https://usekarma.dev/schemas/"

// schemaDir finds schemas/ at the module root, whatever package the test runs in.
func schemaDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "schemas"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test's directory")
		}
		dir = parent
	}
}

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema %s is not among schemas/*.schema.json", url)
}

// compiledSchemas loads every schemas/*.schema.json under its $id (see
// shared/message/golden_test.go), once per test binary.
var compiledSchemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	dir, err := schemaDir()
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.schema.json"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no schemas in %s: %v", dir, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if err := c.AddResource(schemaBase+filepath.Base(f), doc); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, f := range files {
		name := filepath.Base(f)
		sch, err := c.Compile(schemaBase + name)
		if err != nil {
			return nil, fmt.Errorf("compile %s: %w", name, err)
		}
		out[name] = sch
	}
	return out, nil
})

// Validate checks that e, as it goes on the wire, validates against the schema of its type and
// version, parses back and decodes into the newest Go type.
func Validate(t testing.TB, e message.Envelope) {
	t.Helper()
	schemas, err := compiledSchemas()
	if err != nil {
		t.Fatal(err)
	}
	b, err := message.Encode(e)
	if err != nil {
		t.Fatalf("encode %s: %v", e.Type, err)
	}
	name := fmt.Sprintf("%s.v%d.schema.json", e.Type, e.Version)
	sch := schemas[name]
	if sch == nil {
		t.Errorf("%s v%d: no schema schemas/%s", e.Type, e.Version, name)
		return
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(doc); err != nil {
		t.Errorf("%s v%d does not validate against schemas/%s:\n%v\n%s", e.Type, e.Version, name, err, b)
	}
	if _, err := message.Parse(b); err != nil {
		t.Errorf("%s v%d: Parse: %v", e.Type, e.Version, err)
	}
}

func ValidateAll(t testing.TB, msgs []message.Envelope) {
	t.Helper()
	for _, m := range msgs {
		Validate(t, m)
	}
}
