package trigger_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/message/messagetest"
	"github.com/usekarma/karma/shared/trigger"
)

const (
	sha1 = "512423cb3a4857a38f472862b51e4ab1a1730f06"
	sha2 = "d5e0ba2d9b813fa5d15023d7aa615534cda694ac"
)

// checkTrigger checks what every trigger has in common: no cause, and the change it starts as
// its correlation id.
func checkTrigger[P any](t *testing.T, e message.Envelope, typ string) P {
	t.Helper()
	if e.Type != typ || e.Version != message.Latest[typ] || e.CausationID != "" || e.CorrelationID == e.ID || e.CorrelationID == "" {
		t.Errorf("%s v%d id %s correlation %q causation %q: want a %s without cause correlating to its change", e.Type, e.Version, e.ID, e.CorrelationID, e.CausationID, typ)
	}
	messagetest.Validate(t, e)
	var p P
	if err := message.Decode(e, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGitPushed(t *testing.T) {
	t.Parallel()
	author := "Ada Lovelace <ada@example.com>"
	at := time.Date(2026, 11, 22, 8, 0, 0, 123456789, time.UTC)
	push := trigger.Push{SHA: sha1, Author: author, Message: "Raise the prod VPC size\n\nAnd drop the old zone.", Branch: "main",
		Repo: "acme/infra", AutoApprove: true, Provider: "github", Delivery: "d-1", OccurredAt: at, Files: []trigger.FileChange{
			{Path: "iac/_base/vpc/core/config.json"},
			{Path: "components/vpc/main.tf"},
			{Path: "iac/prod/route53-zone/main/config.json", Removed: true},
			{Path: "./iac/dev/ecs-service/api/config.json"},
			{Path: "account_environments/prod.json"},
			{Path: "README.md"},
			{Path: "iac/prod/vpc/core/NOTES.txt"},
			{Path: "components-old/vpc/main.tf"},
		}}
	change := trigger.NewChangeID()
	e, err := trigger.GitPushed(push, "components/", change)
	if err != nil {
		t.Fatal(err)
	}
	p := checkTrigger[message.GitPushed](t, e, message.TypeGitPushed)
	wantFiles := []string{"account_environments/prod.json", "components/vpc/main.tf", "iac/_base/vpc/core/config.json",
		"iac/dev/ecs-service/api/config.json", "iac/prod/route53-zone/main/config.json"}
	switch {
	case e.CorrelationID != change:
		t.Errorf("correlation %s, want the change id given %s", e.CorrelationID, change)
	case e.IdempotencyKey != "git.pushed:"+sha1 || e.Env != "" || e.Actor != (message.Actor{Kind: "git", Name: author}):
		t.Errorf("key %q env %q actor %+v", e.IdempotencyKey, e.Env, e.Actor)
	case !e.OccurredAt.Equal(at.Truncate(time.Millisecond)):
		t.Errorf("occurred_at %v, want when it was received %v", e.OccurredAt, at)
	case !slices.Equal(p.Files, wantFiles):
		t.Errorf("files\n got %q\nwant %q", p.Files, wantFiles)
	case !slices.Equal(p.Removed, []message.ComponentRef{{Type: "route53-zone", Nickname: "main"}}):
		t.Errorf("removed %v", p.Removed)
	case p.Commit.Message != "Raise the prod VPC size" || p.Commit.Before != "" || !p.AutoApprove || p.Provider != "github" || p.Delivery != "d-1":
		t.Errorf("payload %+v", p)
	}

	// A truncated push keeps before (unless it is all zeros: a new branch) and is queued without files.
	tr, err := trigger.GitPushed(trigger.Push{SHA: sha2, Author: author, Truncated: true, Before: sha1}, "components", "")
	if err != nil {
		t.Fatal(err)
	}
	if p := checkTrigger[message.GitPushed](t, tr, message.TypeGitPushed); !p.Truncated || p.Commit.Before != sha1 || p.Files != nil {
		t.Errorf("truncated push: %+v", p)
	}
	nb, err := trigger.GitPushed(trigger.Push{SHA: sha2, Author: author, Truncated: true, Before: strings.Repeat("0", 40)}, "components", "")
	if err != nil {
		t.Fatal(err)
	}
	if p := checkTrigger[message.GitPushed](t, nb, message.TypeGitPushed); p.Commit.Before != "" {
		t.Errorf("a new branch's push: before %q, want none", p.Commit.Before)
	}
	if tr.CorrelationID == nb.CorrelationID {
		t.Errorf("two triggers without a change id given share change %s", tr.CorrelationID)
	}
}

func TestGitPushedNothingDeployable(t *testing.T) {
	t.Parallel()
	for name, files := range map[string][]trigger.FileChange{
		"files outside iac":                  {{Path: "README.md"}, {Path: "scripts/demo.sh"}, {Path: "iac/README.md"}},
		"module files without modules above": {{Path: "modules/vpc/main.tf"}},
		"no files":                           nil,
	} {
		if _, err := trigger.GitPushed(trigger.Push{SHA: sha1, Author: "ada", Files: files}, "components", ""); !errors.Is(err, trigger.ErrNothingDeployable) {
			t.Errorf("%s: err = %v, want ErrNothingDeployable", name, err)
		}
	}
}

func TestGitPushedInvalid(t *testing.T) {
	t.Parallel()
	files := []trigger.FileChange{{Path: "iac/prod/vpc/core/config.json"}}
	for name, p := range map[string]trigger.Push{
		"no sha":           {Author: "ada", Files: files},
		"abbreviated sha":  {SHA: "512423c", Author: "ada", Files: files},
		"upper-case sha":   {SHA: strings.ToUpper(sha1), Author: "ada", Files: files},
		"no author":        {SHA: sha1, Author: " ", Files: files},
		"before not a sha": {SHA: sha1, Author: "ada", Truncated: true, Before: "HEAD~1"},
		"unknown provider": {SHA: sha1, Author: "ada", Files: files, Provider: "bitbucket"},
	} {
		_, err := trigger.GitPushed(p, "components", "")
		if !errors.Is(err, trigger.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := trigger.GitPushed(trigger.Push{SHA: sha1, Author: "ada", Files: files}, "components", "change-1"); !errors.Is(err, trigger.ErrInvalid) ||
		!strings.Contains(err.Error(), `"change-1"`) {
		t.Errorf("a change id that is no UUID: %v", err)
	}
}

type publisher struct {
	msgs []message.Envelope
	fail error
}

func (p *publisher) Publish(_ context.Context, m ...message.Envelope) error {
	if p.fail != nil {
		return p.fail
	}
	p.msgs = append(p.msgs, m...)
	return nil
}

func seenStore(t *testing.T) *embedded.Seen {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := embedded.NewSeen(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A commit is one change however often it is delivered: the first delivery's change, published
// once; a delivery after a failed publish publishes that same change.
func TestCommitsQueueOneChangePerCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	seen := seenStore(t)
	pub := &publisher{fail: errors.New("bus down")}
	c := trigger.Commits{Records: seen, Marks: seen, Publisher: pub}
	push := trigger.Push{SHA: sha1, Author: "ada", Files: []trigger.FileChange{{Path: "iac/prod/vpc/core/config.json"}}}
	first, _ := trigger.GitPushed(push, "components", "")
	if _, err := c.Queue(ctx, first); err == nil || !strings.Contains(err.Error(), "pipeline: bus down") {
		t.Fatalf("a failed publish: %v, want the pipeline named", err)
	}
	pub.fail = nil
	second, _ := trigger.GitPushed(push, "components", "")
	q, err := c.Queue(ctx, second)
	if err != nil || q.Duplicate || q.ChangeID != first.CorrelationID {
		t.Fatalf("redelivery after a failed publish: %+v %v, want change %s queued", q, err, first.CorrelationID)
	}
	third, _ := trigger.GitPushed(push, "components", "")
	q, err = c.Queue(ctx, third)
	if err != nil || !q.Duplicate || q.ChangeID != first.CorrelationID {
		t.Fatalf("a third delivery: %+v %v, want a duplicate of change %s", q, err, first.CorrelationID)
	}
	if len(pub.msgs) != 1 || pub.msgs[0].CorrelationID != first.CorrelationID || pub.msgs[0].ID != second.ID {
		t.Errorf("published %+v, want the second delivery once, as the first change", pub.msgs)
	}
	if got, _ := seen.Recorded(ctx, trigger.RecordKey(sha1)); got != first.CorrelationID {
		t.Errorf("recorded change %q", got)
	}
	if _, err := c.Queue(ctx, message.Envelope{Type: message.TypeChangeDetected, ID: "x"}); err == nil {
		t.Error("queued something that is no git.pushed")
	}
}

// A push changing only a folder of the modules folder that is no component type (a module the
// types' modules call by a local source) is deployable: resolve decides which types use it.
func TestGitPushedOfASharedModuleFolderIsQueued(t *testing.T) {
	t.Parallel()
	push := trigger.Push{SHA: sha1, Author: "Ada <ada@example.com>", Branch: "main", Files: []trigger.FileChange{
		{Path: "components/common/tags.tf"}, {Path: "components/modules/network/main.tf"}}}
	e, err := trigger.GitPushed(push, "components", "")
	if err != nil {
		t.Fatalf("GitPushed = %v, want it queued", err)
	}
	p := checkTrigger[message.GitPushed](t, e, message.TypeGitPushed)
	if want := []string{"components/common/tags.tf", "components/modules/network/main.tf"}; !slices.Equal(p.Files, want) {
		t.Errorf("files %q, want %q", p.Files, want)
	}
}
