package audit_test

// Test helpers shared by this package's tests (the same file is in every workers/* package):
// schema validation of produced messages, golden files with -update, deterministic envelopes,
// a one-message runtime harness and the examples repository as a graph source.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	schemaDir   = "../../schemas"
	schemaBase  = "https://usekarma.dev/schemas/"
	examplesDir = "../../examples"
)

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema %s is not among schemas/*.schema.json", url)
}

// compiledSchemas loads every schemas/*.schema.json under its $id (see
// shared/message/golden_test.go), once per test binary.
var compiledSchemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	files, err := filepath.Glob(filepath.Join(schemaDir, "*.schema.json"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no schemas in %s: %v", schemaDir, err)
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

// validate checks that e, as it goes on the wire, validates against the schema of its type and
// version, parses back and decodes into the newest Go type.
func validate(t testing.TB, e message.Envelope) {
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

func validateAll(t testing.TB, msgs []message.Envelope) {
	t.Helper()
	for _, m := range msgs {
		validate(t, m)
	}
}

// fixedID is a deterministic UUIDv7 for test inputs, so that change set and deployment ids
// derived from them are the same on every run.
func fixedID(n int) string { return fmt.Sprintf("019cebab-87be-7000-8000-%012x", n) }

var fixedTime = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)

// fixedRoot builds a root message with a deterministic id (= its correlation id).
func fixedRoot(t testing.TB, n int, typ, env string, actor message.Actor, idem string, payload any) message.Envelope {
	t.Helper()
	e, err := message.New(typ, env, actor, idem, payload)
	if err != nil {
		t.Fatal(err)
	}
	e.ID, e.CorrelationID, e.OccurredAt = fixedID(n), fixedID(n), fixedTime.Add(time.Duration(n)*time.Second)
	return e
}

// fixedDerive builds a consequence of cause with a deterministic id.
func fixedDerive(t testing.TB, cause message.Envelope, n int, typ, idem string, payload any) message.Envelope {
	t.Helper()
	e, err := cause.Derive(typ, idem, payload)
	if err != nil {
		t.Fatal(err)
	}
	e.ID, e.OccurredAt = fixedID(n), fixedTime.Add(time.Duration(n)*time.Second)
	return e
}

// normalize renders msgs as indented JSON with the volatile fields replaced: id ->
// "<id>", occurred_at -> "<occurred_at>", causation_id -> "<causation:NAME>" when it is a
// key of names (else "<causation_id>"); then every occurrence of a names key (e.g. a root id
// that is also a change set id) is replaced by its value.
func normalize(t testing.TB, msgs []message.Envelope, names map[string]string) []byte {
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

// checkGolden validates msgs against their schemas and compares their normalized form with
// testdata/<name>.golden.json (rewritten with -update).
func checkGolden(t testing.TB, name string, msgs []message.Envelope, names map[string]string) {
	t.Helper()
	validateAll(t, msgs)
	got := normalize(t, msgs, names)
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
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

// payloadOf decodes e's payload into the newest Go type of its message type.
func payloadOf[T any](t testing.TB, e message.Envelope) T {
	t.Helper()
	var p T
	if err := message.Decode(e, &p); err != nil {
		t.Fatalf("decode %s: %v", e.Type, err)
	}
	return p
}

// byType keeps the messages of one type.
func byType(msgs []message.Envelope, typ string) []message.Envelope {
	var out []message.Envelope
	for _, m := range msgs {
		if m.Type == typ {
			out = append(out, m)
		}
	}
	return out
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func newDB(t testing.TB) *embedded.DB {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// process runs h on in the way the runtime does (Runner.Process on an embedded queue: outputs
// published, then the AfterPublish hooks) and returns what it produced.
func process(t testing.TB, q queue.Queue, h pipeline.Handler, in message.Envelope) ([]message.Envelope, pipeline.Action, error) {
	t.Helper()
	const stage = "harness"
	ctx := context.Background()
	b, err := message.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Send(ctx, stage, queue.Message{Body: b}); err != nil {
		t.Fatal(err)
	}
	ds, err := q.Receive(ctx, stage, 1, time.Minute, time.Second)
	if err != nil || len(ds) != 1 {
		t.Fatalf("receive: %d deliveries, %v", len(ds), err)
	}
	var out []message.Envelope
	var herr error
	r := &pipeline.Runner{Queue: q, Log: quietLog, Observe: func(_ string, _ message.Envelope, o []message.Envelope, _ pipeline.Action, e error) {
		out, herr = o, e
	}}
	action := r.Process(ctx, pipeline.Stage{Name: stage, Handler: h}, ds[0])
	return out, action, herr
}

// repoGraphs builds graphs from a config repository (as cmd/karma's repoGraphs does).
type repoGraphs struct {
	root   string
	params func(env string) params.Store // nil: runtime status unknown
}

func (g repoGraphs) Build(ctx context.Context, env string, overrides map[string][]byte) (*model.Result, error) {
	return model.Build(ctx, g.root, model.BuildOptions{LoadOptions: model.LoadOptions{Env: env, Overrides: overrides}, Params: g.params})
}

func (g repoGraphs) Environments(ctx context.Context) ([]string, error) {
	repo, err := model.Load(g.root, model.LoadOptions{})
	if err != nil {
		return nil, err
	}
	return repo.Environments, nil
}

// writeRepo creates a config repository from relative path -> content.
func writeRepo(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
