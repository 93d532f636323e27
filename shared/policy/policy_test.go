package policy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// examplePolicies reads examples/policies, as a commit's tree would hold them.
func examplePolicies(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	paths, err := filepath.Glob(filepath.Join("..", "..", "examples", "policies", "*.rego"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("example policies: %v %v", paths, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files["policies/"+filepath.Base(p)] = b
	}
	return files
}

func prodChange(author string) Change {
	return Change{ID: "c1/prod", Env: "prod", Source: "git", Commit: "9f3c2a71", Author: author, Actor: Actor{Kind: "git", Name: author}}
}

// pushedBy is prodChange of a push whose head author is author and whose commits were written by
// authors.
func pushedBy(author string, authors ...string) Change {
	c := prodChange(author)
	c.Pusher, c.PushAuthors = author, authors
	return c
}

// requestedBy is a change request of prod, its commit authored by author (requested_by), asked by
// actor (the API's caller, the CLI's --as).
func requestedBy(author string, actor Actor) Change {
	return Change{ID: "r1/prod", Env: "prod", Source: "request", Commit: "9f3c2a71", Author: author, Actor: actor}
}

// TestExamplePolicies evaluates examples/policies through the library, case by case.
func TestExamplePolicies(t *testing.T) {
	t.Parallel()
	set, err := Compile(context.Background(), examplePolicies(t))
	if err != nil {
		t.Fatal(err)
	}
	site := Component{ID: "prod/serverless-site/www", Env: "prod", Type: "serverless-site", Nickname: "www", Root: true}
	vpc := Component{ID: "prod/vpc/core", Env: "prod", Type: "vpc", Nickname: "core", Root: true}
	for _, tc := range []struct {
		name        string
		in          Input
		deny, needs []string
	}{
		{"the web team changes its site", Input{Stage: StageResolve, Change: prodChange("Ada Lovelace <Ada@Example.com>"), Component: site}, nil, nil},
		{"someone else changes the site", Input{Stage: StageResolve, Change: prodChange("Bob <bob@example.com>"), Component: site},
			[]string{"prod/serverless-site/www belongs to the web team (ada@example.com): Bob <bob@example.com> may not change it"}, nil},
		{"a commit of the push by someone else", Input{Stage: StageResolve, Change: pushedBy("Ada Lovelace <ada@example.com>", "Ada Lovelace <ada@example.com>", "Mallory <mallory@example.com>"), Component: site},
			[]string{"prod/serverless-site/www belongs to the web team (ada@example.com): Mallory <mallory@example.com> may not change it"}, nil},
		{"every commit of the push by the web team", Input{Stage: StageResolve, Change: pushedBy("Ada Lovelace <ada@example.com>", "Ada <ADA@example.com>"), Component: site}, nil, nil},
		{"a change request in an owner's name by someone else", Input{Stage: StageResolve, Change: requestedBy("Ada Lovelace <ada@example.com>", Actor{Kind: "api", Name: "mallory-ci"}), Component: site},
			[]string{"prod/serverless-site/www belongs to the web team (ada@example.com): mallory-ci may not request a change of it"}, nil},
		{"a change request by the web team", Input{Stage: StageResolve, Change: requestedBy("Ada Lovelace <ada@example.com>", Actor{Kind: "api", Name: "ada"}), Component: site}, nil, nil},
		{"a change request by the web team on the CLI", Input{Stage: StageResolve, Change: requestedBy("Ada Lovelace <ada@example.com>", Actor{Kind: "cli", Name: "Ada Lovelace <ADA@example.com>"}), Component: site}, nil, nil},
		{"the site redeployed for an upstream", Input{Stage: StageResolve, Change: prodChange("Bob <bob@example.com>"), Component: Component{ID: site.ID, Env: "prod", Type: site.Type}}, nil, nil},
		{"the site redeployed for an upstream with a change of its own never deployed", Input{Stage: StageResolve, Change: prodChange("Ada Lovelace <ada@example.com>"),
			Component: Component{ID: site.ID, Env: "prod", Type: site.Type}, Diff: Diff(map[string]any{"tags": map[string]any{"Owner": "web"}}, map[string]any{"tags": map[string]any{"Owner": "bob"}})},
			[]string{"prod/serverless-site/www belongs to the web team (ada@example.com): a redeploy for its upstreams would deploy a change of its config not deployed before (tags), which only a change of the site by the web team deploys"}, nil},
		{"the site in dev", Input{Stage: StageResolve, Change: Change{Env: "dev", Source: "git", Author: "Bob <bob@example.com>"}, Component: site}, nil, nil},
		{"a VPC's range changes", Input{Stage: StageResolve, Change: prodChange("Bob <bob@example.com>"), Component: vpc,
			Diff: Diff(map[string]any{"cidr": "10.20.0.0/16", "az_count": 3.0}, map[string]any{"cidr": "10.30.0.0/16", "az_count": 3.0})},
			nil, []string{"prod/vpc/core: cidr change (was 10.20.0.0/16) is reviewed by people"}},
		{"a VPC's first deployment", Input{Stage: StageResolve, Change: prodChange("Bob <bob@example.com>"), Component: vpc,
			Diff: Diff(nil, map[string]any{"cidr": "10.30.0.0/16"})}, nil, nil},
		{"other keys", Input{Stage: StageResolve, Change: prodChange("Bob <bob@example.com>"), Component: vpc,
			Diff: Diff(map[string]any{"az_count": 3.0}, map[string]any{"az_count": 4.0})}, nil, nil},
		{"a component removed", Input{Stage: StageResolve, Change: prodChange("Ada <ada@example.com>"), Component: Component{ID: "prod/s3-bucket/old", Destroy: true, Root: true}},
			nil, []string{"prod/s3-bucket/old is removed from the repository: destroying it needs an approval"}},
		{"a plan that deletes", Input{Stage: StageApply, Change: prodChange("Ada <ada@example.com>"), Component: vpc,
			Plan: &Plan{Add: 1, Destroy: 1, Resources: []Resource{{Address: "terraform_data.vpc", Actions: []string{"delete", "create"}}}}},
			nil, []string{"prod/vpc/core: the plan deletes terraform_data.vpc"}},
		{"a plan that updates", Input{Stage: StageApply, Change: prodChange("Ada <ada@example.com>"), Component: vpc,
			Plan: &Plan{Change: 1, Resources: []Resource{{Address: "terraform_data.vpc", Actions: []string{"update"}}}}}, nil, nil},
	} {
		d, err := set.Evaluate(context.Background(), tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(d.Deny, tc.deny) || !reflect.DeepEqual(d.RequireApproval, tc.needs) {
			t.Errorf("%s: deny %q, require approval %q; want %q, %q", tc.name, d.Deny, d.RequireApproval, tc.deny, tc.needs)
		}
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	got := Diff(map[string]any{"a": 1.0, "b": map[string]any{"x": 1.0}, "gone": true}, map[string]any{"a": 1.0, "b": map[string]any{"x": 2.0}, "new": "y"})
	want := []KeyChange{{Key: "b", Op: "change", Before: map[string]any{"x": 1.0}, After: map[string]any{"x": 2.0}}, {Key: "gone", Op: "remove", Before: true}, {Key: "new", Op: "add", After: "y"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Diff = %+v", got)
	}
	if d := Diff(map[string]any{"a": 1.0}, map[string]any{"a": 1.0}); d == nil || len(d) != 0 {
		t.Errorf("no change: %#v, want empty", d)
	}
}

type countingSource struct {
	files map[string]map[string][]byte
	reads atomic.Int32
	fail  error
}

func (s *countingSource) Policies(_ context.Context, commit string) (map[string][]byte, error) {
	s.reads.Add(1)
	return s.files[commit], s.fail
}

// The engine compiles each commit's policies once, evaluates each commit with its own, and
// reports invalid policies as permanent, naming the commit.
func TestEngineCompilesOncePerCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := &countingSource{files: map[string]map[string][]byte{
		"aaaa": {"p.rego": []byte("package karma\n\ndeny contains \"no\" if input.component.type == \"vpc\"\n")},
		"bbbb": nil,
		"bad":  {"p.rego": []byte("package karma\n\ndeny contains if {\n")},
		"odd":  {"p.rego": []byte("package karma\n\ndeny := 3\n")},
	}}
	e := &Engine{Source: src}
	in := Input{Component: Component{Type: "vpc"}}
	for range 3 {
		if d, err := e.Evaluate(ctx, "aaaa", in); err != nil || !d.Denied() || d.DenyReason() != "denied by policy: no" {
			t.Fatalf("aaaa: %+v, %v", d, err)
		}
	}
	if d, err := e.Evaluate(ctx, "bbbb", in); err != nil || d.Denied() || d.NeedsApproval() {
		t.Errorf("a commit without policies: %+v, %v", d, err)
	}
	if n := src.reads.Load(); n != 2 {
		t.Errorf("policies read %d times for 2 commits", n)
	}
	for _, c := range []string{"bad", "odd"} {
		_, err := e.Evaluate(ctx, c, in)
		var ie *InvalidError
		if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) || !ie.Permanent() || !strings.Contains(err.Error(), "the policies of commit "+c) {
			t.Errorf("%s: %v", c, err)
		}
	}
	failing := &Engine{Source: &countingSource{fail: errors.New("network")}}
	if _, err := failing.Evaluate(ctx, "cccc", in); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("a read failure: %v", err)
	}
	if failing.Compiles() != 0 {
		t.Error("a failed read was kept: it would never be retried")
	}
}

// A failing built-in denies (fail closed) instead of leaving the deny rule undefined; an
// evaluation cut short by its context decides nothing — no denial is recorded, the caller
// retries — and is not kept as the commit's verdict.
func TestEngineFailsClosedAndCancellationDecidesNothing(t *testing.T) {
	t.Parallel()
	src := &countingSource{files: map[string]map[string][]byte{
		"strict": {"p.rego": []byte("package karma\n\ndeny contains msg if {\n\tmsg := sprintf(\"%s\", input.component.type)\n}\n")},
		// slow for an environment called "slow": long enough for a deadline to cut it short.
		"fine": {"p.rego": []byte("package karma\n\ndeny contains \"no\" if input.component.type == \"vpc\"\n\n" +
			"deny contains \"slow\" if {\n\tinput.change.env == \"slow\"\n\tcount([x | some x in numbers.range(1, 50000000)]) > 0\n}\n")},
	}}
	e := &Engine{Source: src}
	in := Input{Component: Component{Type: "vpc"}}
	if _, err := e.Evaluate(context.Background(), "strict", in); !errors.Is(err, ErrInvalid) {
		t.Errorf("a failing built-in (sprintf's second argument not an array): %v, want the policies invalid (deny)", err)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	slow := in
	slow.Change.Env = "slow"
	_, err := e.Evaluate(short, "fine", slow)
	if err == nil || errors.Is(err, ErrInvalid) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a cancelled evaluation: %v, want a context error, not invalid policies", err)
	}
	if d, err := e.Evaluate(context.Background(), "fine", in); err != nil || !d.Denied() {
		t.Errorf("the same commit after a cancelled evaluation: %+v, %v", d, err)
	}
}

// The operator's policies (KARMA_POLICIES) judge every change beside the commit's: a commit
// without policies — one that deleted them — is still denied by the operator's; both sets'
// reasons are joined. A folder that does not compile, or holds no policy, is refused at load.
func TestOperatorPoliciesBesideTheCommits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("floor.rego", "package karma\n\ndeny contains \"prod's vpc is the network team's\" if {\n\tinput.change.env == \"prod\"\n\tinput.component.type == \"vpc\"\n}\n\n"+
		"require_approval contains \"every prod change is reviewed\" if input.change.env == \"prod\"\n")
	floor, err := LoadDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	src := &countingSource{files: map[string]map[string][]byte{
		"nopolicies": nil,
		"own":        {"p.rego": []byte("package karma\n\nrequire_approval contains \"the commit's own rule\" if input.component.type == \"vpc\"\n")},
	}}
	e := &Engine{Source: src, Floor: floor}
	vpc := Input{Change: Change{Env: "prod"}, Component: Component{Type: "vpc"}}
	d, err := e.Evaluate(ctx, "nopolicies", vpc)
	if err != nil || !d.Denied() || d.DenyReason() != "denied by policy: prod's vpc is the network team's" {
		t.Errorf("a commit without policies: %+v, %v", d, err)
	}
	d, err = e.Evaluate(ctx, "own", Input{Change: Change{Env: "prod"}, Component: Component{Type: "vpc"}})
	if err != nil || !reflect.DeepEqual(d.RequireApproval, []string{"every prod change is reviewed", "the commit's own rule"}) {
		t.Errorf("both sets' approvals joined: %+v, %v", d, err)
	}
	if d, err := e.Evaluate(ctx, "own", Input{Change: Change{Env: "dev"}, Component: Component{Type: "app"}}); err != nil || d.Denied() || d.NeedsApproval() {
		t.Errorf("dev: %+v, %v", d, err)
	}

	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "broken.rego"), []byte("package karma\n\ndeny contains if {\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDir(ctx, bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a folder that does not compile: %v", err)
	}
	if _, err := LoadDir(ctx, t.TempDir()); err == nil || !strings.Contains(err.Error(), "no *.rego") {
		t.Errorf("an empty folder: %v", err)
	}
	if _, err := LoadDir(ctx, filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing folder was accepted")
	}
}

// Policies of which no module is in package karma decide nothing: their deny rules, written in
// another package, would let every change through. They are invalid (every component denied,
// naming why), as the operator's policies are refused at load; a helper package beside package
// karma is fine.
func TestPoliciesOutsidePackageKarmaAreInvalid(t *testing.T) {
	t.Parallel()
	src := &countingSource{files: map[string]map[string][]byte{
		"sub":   {"p.rego": []byte("package karma.ownership\n\ndeny contains \"not yours\" if input.component.type == \"vpc\"\n")},
		"other": {"p.rego": []byte("package policies\n\ndeny contains \"not yours\" if input.component.type == \"vpc\"\n")},
		"lib": {"a.rego": []byte("package karma\n\nimport data.lib\n\ndeny contains \"not yours\" if lib.is_vpc\n"),
			"b.rego": []byte("package lib\n\nis_vpc if input.component.type == \"vpc\"\n")},
	}}
	e := &Engine{Source: src}
	in := Input{Component: Component{Type: "vpc"}}
	for _, commit := range []string{"sub", "other"} {
		d, err := e.Evaluate(context.Background(), commit, in)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "package karma") {
			t.Errorf("%s: %+v, %v: want the policies invalid, naming package karma", commit, d, err)
		}
	}
	if d, err := e.Evaluate(context.Background(), "lib", in); err != nil || !d.Denied() {
		t.Errorf("package karma with a helper package: %+v, %v, want denied", d, err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "floor.rego"), []byte("package floor\n\ndeny contains \"no\" if true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDir(context.Background(), dir); err == nil || !strings.Contains(err.Error(), "package karma") {
		t.Errorf("operator's policies outside package karma: %v, want refused", err)
	}
}

// A commit's policy cannot reach outside the commit and the change: http.send (a request from
// the deciding process — to a metadata endpoint, whose answer a deny message would record),
// net.lookup_ip_addr and opa.runtime do not compile, and nothing is requested.
func TestPoliciesCannotReachTheNetwork(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"SecretAccessKey": "s3cret"}`))
	}))
	defer srv.Close()
	for name, body := range map[string]string{
		"http.send":          `r := http.send({"method": "GET", "url": "` + srv.URL + `"}); msg := sprintf("%v", [r.body])`,
		"net.lookup_ip_addr": `ips := net.lookup_ip_addr("localhost"); msg := sprintf("%v", [ips])`,
		"opa.runtime":        `msg := sprintf("%v", [opa.runtime()])`,
	} {
		src := "package karma\n\ndeny contains msg if {\n\t" + strings.ReplaceAll(body, "; ", "\n\t") + "\n}\n"
		set, err := Compile(context.Background(), map[string][]byte{"policies/leak.rego": []byte(src)})
		if err == nil {
			d, eerr := set.Evaluate(context.Background(), Input{})
			t.Errorf("%s: compiled; evaluated to %+v, %v", name, d, eerr)
			continue
		}
		if !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want an error naming it", name, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the policy's request reached the server %d time(s)", n)
	}
}
