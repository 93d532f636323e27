package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/dynamo"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/eventbridge"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/neptune"
	"github.com/usekarma/karma/shared/params/ssm"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/sqs"
	"github.com/usekarma/karma/shared/terraform"
)

func examples(t *testing.T) *gittest.Origin {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	return gittest.OriginFrom(t, "config.git", dir)
}

// Every stage builds on the embedded default, with every store in the one state file.
func TestEmbeddedDefault(t *testing.T) {
	o := examples(t)
	cfg := config.Defaults()
	cfg.Repo, cfg.StateDir = o.Work, t.TempDir()
	a := app.New(cfg, app.Options{Terraform: &terraform.Noop{}})
	defer a.Close()
	ctx := context.Background()
	stages, err := a.Stages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != len(app.StageNames) {
		t.Fatalf("%d stages", len(stages))
	}
	for _, st := range stages {
		// The audit log is idempotent on message ids itself: its stage keeps no marks.
		if wantSeen := st.Name != pipeline.StageAudit; st.Handler == nil || (st.Seen != nil) != wantSeen {
			t.Errorf("stage %s: handler %v, seen %v", st.Name, st.Handler != nil, st.Seen != nil)
		}
	}
	q, err := a.Queue(ctx)
	if _, ok := q.(*embedded.Queue); !ok || err != nil {
		t.Errorf("queue %T, %v: want the embedded queue", q, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "karma.db")); err != nil {
		t.Errorf("no state file: %v", err)
	}
	src, err := a.Source(ctx)
	if err != nil || !src.Repo.Local() {
		t.Errorf("source %v, %v: want the local clone", src, err)
	}
	if _, err := a.Stage(ctx, "deploy"); err == nil || !strings.Contains(err.Error(), "want one of ingest, resolve") {
		t.Errorf("unknown stage: %v", err)
	}
}

// A folder that is not a git repository fails the stages that read it, naming the folder.
func TestStageNamesWhatItCannotOpen(t *testing.T) {
	cfg := config.Defaults()
	cfg.Repo, cfg.StateDir = t.TempDir(), t.TempDir()
	a := app.New(cfg, app.Options{Terraform: &terraform.Noop{}})
	defer a.Close()
	_, err := a.Stage(context.Background(), pipeline.StageResolve)
	if err == nil || !strings.Contains(err.Error(), "stage resolve") || !strings.Contains(err.Error(), cfg.Repo) {
		t.Errorf("resolve without a repository: %v", err)
	}
	if _, err := a.Stage(context.Background(), pipeline.StageAudit); err != nil {
		t.Errorf("audit needs no repository: %v", err)
	}
}

// awsEnv points the SDK at the local stand-ins, or skips.
func awsEnv(t *testing.T) (moto, ddb, gremlin string) {
	t.Helper()
	moto, ddb, gremlin = os.Getenv("KARMA_TEST_MOTO_ENDPOINT"), os.Getenv("KARMA_TEST_DYNAMODB"), os.Getenv("KARMA_TEST_GREMLIN")
	if moto == "" || ddb == "" || gremlin == "" {
		t.Skip("needs KARMA_TEST_MOTO_ENDPOINT, KARMA_TEST_DYNAMODB and KARMA_TEST_GREMLIN (make test starts the servers)")
	}
	t.Setenv("AWS_ENDPOINT_URL", moto)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", ddb)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	return moto, ddb, gremlin
}

// Every store on AWS: SSM, SQS + EventBridge, DynamoDB, Neptune — the stand-ins here.
func TestAWSBackends(t *testing.T) {
	_, ddbEP, gremlin := awsEnv(t)
	ctx := context.Background()
	prefix := fmt.Sprintf("app%06x", rand.Uint32()&0xffffff)
	ddb, err := dynamo.NewClient(ctx, ddbEP)
	if err != nil {
		t.Fatal(err)
	}
	tables := dynamo.DefaultTableNames(prefix)
	if err := dynamo.CreateTables(ctx, ddb, tables); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dynamo.DeleteTables(context.Background(), ddb, tables) })
	o := examples(t)
	cfg := config.Defaults()
	cfg.Repo, cfg.StateDir = o.Work, t.TempDir()
	cfg.Params, cfg.Queue, cfg.Graph, cfg.Audit, cfg.State = config.AWS, config.AWS, config.AWS, config.AWS, config.AWS
	cfg.QueuePrefix, cfg.EventBus = prefix+"-", prefix+"-bus"
	cfg.NeptuneEndpoint, cfg.NeptuneNamespace = gremlin, prefix
	cfg.AuditTable, cfg.ChangeSetTable, cfg.IdempotencyTable = tables.Audit, tables.ChangeSets, tables.Seen
	cfg.Git.URL = o.Bare
	a := app.New(cfg, app.Options{Repo: app.RepoCache, Terraform: &terraform.Noop{}})
	defer a.Close()
	stages, err := a.Stages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stages {
		if st.Name == pipeline.StageAudit && st.Seen != nil {
			t.Error("the audit stage keeps idempotency records on AWS")
		}
	}
	checks := []struct {
		name string
		get  func() (any, error)
		want string
	}{
		{"queue", func() (any, error) { return a.Queue(ctx) }, fmt.Sprintf("%T", &sqs.Queue{})},
		{"publisher", func() (any, error) { return a.Publisher(ctx) }, fmt.Sprintf("%T", &eventbridge.Publisher{})},
		{"params", func() (any, error) { return a.Params(ctx, "prod") }, fmt.Sprintf("%T", &ssm.Store{})},
		{"audit", func() (any, error) { return a.Audit(ctx) }, fmt.Sprintf("%T", &dynamo.AuditLog{})},
		{"change sets", func() (any, error) { return a.ChangeSets(ctx) }, fmt.Sprintf("%T", &dynamo.ChangeSets{})},
		{"lineage", func() (any, error) { return a.Lineage(ctx) }, fmt.Sprintf("%T", &neptune.LineageStore{})},
		{"graph", func() (any, error) { return a.GraphStore(ctx) }, fmt.Sprintf("%T", &neptune.GraphStore{})},
	}
	for _, c := range checks {
		v, err := c.get()
		if err != nil || fmt.Sprintf("%T", v) != c.want {
			t.Errorf("%s: %T, %v; want %s", c.name, v, err, c.want)
		}
	}
	// The stores answer: the audit log on DynamoDB Local, the graph on Gremlin Server.
	log, _ := a.Audit(ctx)
	if _, err := log.Chains(ctx); err != nil {
		t.Errorf("audit log: %v", err)
	}
	lin, _ := a.Lineage(ctx)
	if _, err := lin.Deployments(ctx, "prod/vpc/core"); err != nil {
		t.Errorf("lineage: %v", err)
	}
	src, err := a.Source(ctx)
	if err != nil || src.Repo.Local() {
		t.Fatalf("source %v, %v: want a cache clone", src, err)
	}
	if head, err := src.Head(ctx); err != nil || head != o.Head(t) {
		t.Errorf("head %s, %v", head, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "karma.db")); err == nil {
		t.Error("an all-AWS configuration opened the embedded state file")
	}
}

// A mix: the audit log on DynamoDB, everything else embedded.
func TestMixedBackends(t *testing.T) {
	_, ddbEP, _ := awsEnv(t)
	ctx := context.Background()
	ddb, err := dynamo.NewClient(ctx, ddbEP)
	if err != nil {
		t.Fatal(err)
	}
	tables := dynamo.DefaultTableNames(fmt.Sprintf("mix%06x", rand.Uint32()&0xffffff))
	if err := dynamo.CreateTables(ctx, ddb, tables); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dynamo.DeleteTables(context.Background(), ddb, tables) })
	cfg := config.Defaults()
	cfg.Repo, cfg.StateDir = examples(t).Work, t.TempDir()
	cfg.Audit, cfg.AuditTable = config.AWS, tables.Audit
	a := app.New(cfg, app.Options{Terraform: &terraform.Noop{}})
	defer a.Close()
	if _, err := a.Stages(ctx); err != nil {
		t.Fatal(err)
	}
	if l, _ := a.Audit(ctx); fmt.Sprintf("%T", l) != fmt.Sprintf("%T", &dynamo.AuditLog{}) {
		t.Errorf("audit log %T", l)
	}
	if q, _ := a.Queue(ctx); fmt.Sprintf("%T", q) != fmt.Sprintf("%T", &embedded.Queue{}) {
		t.Errorf("queue %T", q)
	}
}

// The operator's floor (KARMA_GOVERNANCE) is read once; a file that is not valid stops the
// stages from being built, naming the file and the problem; none configured: no floor.
func TestGovernanceFloor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "floor.json"), filepath.Join(dir, "bad-floor.json")
	if err := os.WriteFile(good, []byte(`{"environments": {"prod": {"protected": true, "approvals": 2}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"environments": {"prod": {"approvals": 0.5}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := app.New(config.Config{}, app.Options{}).GovernanceFloor(); f != nil || err != nil {
		t.Errorf("no floor configured: %+v, %v", f, err)
	}
	f, err := app.New(config.Config{Governance: good}, app.Options{}).GovernanceFloor()
	if err != nil || f == nil || !f.For("prod").Protected || f.For("prod").Required() != 2 {
		t.Errorf("the floor: %+v, %v", f, err)
	}
	if _, err := app.New(config.Config{Governance: bad}, app.Options{}).GovernanceFloor(); err == nil || !strings.Contains(err.Error(), "bad-floor.json") {
		t.Errorf("an invalid floor: %v", err)
	}
}
