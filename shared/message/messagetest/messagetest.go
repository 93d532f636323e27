// Package messagetest checks messages produced in tests against the wire contract: the JSON
// Schema of their type and version under schemas/, and the codec; and compares them with golden
// files (testdata/<name>.golden.json, -update rewrites them). Only tests import it.
package messagetest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
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

// Update is -update: CheckGolden rewrites the golden files instead of comparing.
var Update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Normalize renders msgs as indented JSON with the volatile fields replaced: id ->
// "<id>", occurred_at -> "<occurred_at>", causation_id -> "<causation:NAME>" when it is a
// key of names (else "<causation_id>"); then every occurrence of a names key (e.g. a root id
// that is also a change set id) is replaced by its value.
func Normalize(t testing.TB, msgs []message.Envelope, names map[string]string) []byte {
	t.Helper()
	docs := []any{}
	for _, m := range msgs {
		b, err := message.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		doc["id"] = "<id>"
		doc["occurred_at"] = "<occurred_at>"
		if c, ok := doc["causation_id"].(string); ok {
			if name, ok := names[c]; ok {
				doc["causation_id"] = "<causation:" + name + ">"
			} else {
				doc["causation_id"] = "<causation_id>"
			}
		}
		docs = append(docs, doc)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(docs); err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(buf.String(), "\n")
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		s = strings.ReplaceAll(s, k, "<"+names[k]+">")
	}
	return []byte(s + "\n")
}

// CheckGolden validates msgs against their schemas and compares their normalized form with
// testdata/<name>.golden.json (rewritten with -update).
func CheckGolden(t testing.TB, name string, msgs []message.Envelope, names map[string]string) {
	t.Helper()
	ValidateAll(t, msgs)
	got := Normalize(t, msgs, names)
	path := filepath.Join("testdata", name+".golden.json")
	if *Update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
