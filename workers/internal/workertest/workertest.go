// Package workertest holds the test helpers every workers/* package uses: schema validation of
// produced messages, golden files with -update, deterministic envelopes, a one-message runtime
// harness and the examples repository as a graph source. Only tests import it.
package workertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/message/messagetest"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

// Update is -update: rewrite the golden files in testdata/ (messagetest.Update).
var Update = messagetest.Update

const (
	ExamplesDir = "../../examples"
)

// Validate checks that e validates against its schema, parses back and decodes (messagetest).
func Validate(t testing.TB, e message.Envelope) { messagetest.Validate(t, e) }

// ValidateAll validates every message.
func ValidateAll(t testing.TB, msgs []message.Envelope) { messagetest.ValidateAll(t, msgs) }

// FixedID is a deterministic UUIDv7 for test inputs, so that change set and deployment ids
// derived from them are the same on every run.
func FixedID(n int) string { return fmt.Sprintf("019cebab-87be-7000-8000-%012x", n) }

var FixedTime = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)

// FixedRoot builds a root message with a deterministic id (= its correlation id).
func FixedRoot(t testing.TB, n int, typ, env string, actor message.Actor, idem string, payload any) message.Envelope {
	t.Helper()
	e, err := message.New(typ, env, actor, idem, payload)
	if err != nil {
		t.Fatal(err)
	}
	e.ID, e.CorrelationID, e.OccurredAt = FixedID(n), FixedID(n), FixedTime.Add(time.Duration(n)*time.Second)
	return e
}

// FixedDerive builds a consequence of cause with a deterministic id.
func FixedDerive(t testing.TB, cause message.Envelope, n int, typ, idem string, payload any) message.Envelope {
	t.Helper()
	e, err := cause.Derive(typ, idem, payload)
	if err != nil {
		t.Fatal(err)
	}
	e.ID, e.OccurredAt = FixedID(n), FixedTime.Add(time.Duration(n)*time.Second)
	return e
}

// Normalize renders msgs with their volatile fields replaced (messagetest.Normalize).
func Normalize(t testing.TB, msgs []message.Envelope, names map[string]string) []byte {
	t.Helper()
	return messagetest.Normalize(t, msgs, names)
}

// CheckGolden validates msgs and compares them with testdata/<name>.golden.json
// (messagetest.CheckGolden; -update rewrites it).
func CheckGolden(t testing.TB, name string, msgs []message.Envelope, names map[string]string) {
	t.Helper()
	messagetest.CheckGolden(t, name, msgs, names)
}

// PayloadOf decodes e's payload into the newest Go type of its message type.
func PayloadOf[T any](t testing.TB, e message.Envelope) T {
	t.Helper()
	var p T
	if err := message.Decode(e, &p); err != nil {
		t.Fatalf("decode %s: %v", e.Type, err)
	}
	return p
}

// ByType keeps the messages of one type.
func ByType(msgs []message.Envelope, typ string) []message.Envelope {
	var out []message.Envelope
	for _, m := range msgs {
		if m.Type == typ {
			out = append(out, m)
		}
	}
	return out
}

var QuietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func NewDB(t testing.TB) *embedded.DB {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Process runs h on in the way the runtime does (Runner.Process on an embedded queue: outputs
// published, then the AfterPublish hooks) and returns what it produced.
func Process(t testing.TB, q queue.Queue, h pipeline.Handler, in message.Envelope) ([]message.Envelope, pipeline.Action, error) {
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
	r := &pipeline.Runner{Queue: q, Log: QuietLog, Observe: func(_ string, _ message.Envelope, o []message.Envelope, _ pipeline.Action, e error) {
		out, herr = o, e
	}}
	action := r.Process(ctx, pipeline.Stage{Name: stage, Handler: h}, ds[0])
	return out, action, herr
}

// HeadSHA is the commit RepoGraphs reports as the deploy branch's head.
const HeadSHA = "0123456789abcdef0123456789abcdef01234567"

// RepoGraphs builds graphs from a config repository folder, whatever the commit asked for: a
// fake of configrepo.Source for the workers' unit tests (commit handling is tested with real
// git repositories in shared/configrepo and cmd/karma).
type RepoGraphs struct {
	Root   string
	Params func(env string) params.Store // nil: runtime status unknown
}

func (g RepoGraphs) Build(ctx context.Context, env, _ string, overrides map[string][]byte) (*model.Result, error) {
	return model.Build(ctx, g.Root, model.BuildOptions{LoadOptions: model.LoadOptions{Env: env, Overrides: overrides}, Params: g.Params})
}

// Head is HeadSHA.
func (g RepoGraphs) Head(context.Context) (string, error) { return HeadSHA, nil }

// IsAncestor: a folder has one version, so no commit is an ancestor of another.
func (g RepoGraphs) IsAncestor(context.Context, string, string) (bool, error) { return false, nil }

// Diff is not available on a folder.
func (g RepoGraphs) Diff(context.Context, string, string) ([]model.ChangedFile, error) {
	return nil, errors.New("workertest: a folder has no history to diff")
}

// SettingsAt reads the folder's karma.json, whatever the commit asked for.
func (g RepoGraphs) SettingsAt(context.Context, string) (model.Settings, error) {
	return model.LoadSettings(g.Root, model.Settings{})
}

func (g RepoGraphs) Environments(ctx context.Context, _ string) ([]string, error) {
	repo, err := model.Load(g.Root, model.LoadOptions{})
	if err != nil {
		return nil, err
	}
	return repo.Environments, nil
}

// WriteRepo creates a config repository from relative path -> content.
func WriteRepo(t testing.TB, files map[string]string) string {
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
