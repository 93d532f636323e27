package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/embedded"
)

// auditState runs Ada's initial commit through the pipeline (real Terraform on the example
// modules), approved by grace.hopper: a log with approvals. It returns the hooks and the flags
// naming the state.
func auditState(t *testing.T) (*globals, []string) {
	t.Helper()
	needTerraform(t)
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded"}
	args := []string{"--repo", repo, "--state-dir", state}
	t.Setenv("KARMA_ACTOR", "grace.hopper")
	for _, cmd := range [][]string{{"ingest", "commit"}, {"apply", "--auto-approve"}} {
		if code, out, errOut := karmaWith(t, g, append(cmd, args...)...); code != 0 {
			t.Fatalf("karma %v: exit %d\n%s\n%s", cmd, code, out, errOut)
		}
	}
	return g, args
}

// rawSQL runs statements on the state file behind the CLI's back.
func rawSQL(t *testing.T, args []string, stmts ...string) {
	t.Helper()
	db, err := embedded.Open(filepath.Join(args[3], "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.SQL.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// removeNewest deletes the newest record of chain and, with rollBack, moves its head back to
// the record before: a removal the chain alone no longer shows.
func removeNewest(chain string, rollBack bool) []string {
	stmts := []string{`DELETE FROM audit WHERE chain = '` + chain + `' AND seq = (SELECT MAX(seq) FROM audit WHERE chain = '` + chain + `')`}
	if rollBack {
		stmts = append(stmts, `UPDATE audit_heads SET (seq, hash) = (SELECT seq, hash FROM audit WHERE chain = '`+chain+
			`' ORDER BY seq DESC LIMIT 1) WHERE chain = '`+chain+`'`)
	}
	return stmts
}

// The text log says, per record, who authored the change, who approved the plan, and why the
// record exists; --json carries the same explanation.
func TestAuditLogExplains(t *testing.T) {
	g, args := auditState(t)
	code, out, errOut := karmaWith(t, g, append([]string{"audit", "log", "--component", "prod/vpc/core"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	sha := git(t, args[1], "rev-parse", "HEAD")[:12]
	for _, want := range []string{
		`deployment.scheduled     prod/vpc/core#1 +by Ada <ada@example.com> \(git\); cause: commit ` + sha + `$`,
		`deployment.approved      prod/vpc/core#4 +by Ada <ada@example.com> \(git\); approved by grace.hopper; cause: commit ` + sha + `$`,
		`deployment.applied       prod/vpc/core#5 +by Ada <ada@example.com> \(git\); cause: after deployment.approved prod/vpc/core#4$`,
	} {
		if !regexp.MustCompile(`(?m)` + want).MatchString(out) {
			t.Errorf("audit log lacks a line matching %q:\n%s", want, out)
		}
	}
	code, out, _ = karmaWith(t, g, append([]string{"audit", "log", "--correlation", "nope", "--json"}, args...)...)
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("audit log --json of nothing: exit %d, %q", code, out)
	}
	_, out, _ = karmaWith(t, g, append([]string{"audit", "log", "--component", "prod/vpc/core", "--json"}, args...)...)
	var recs []struct {
		Type        string `json:"type"`
		Hash        string `json:"hash"`
		Explanation struct{ Author, Approver, Cause string }
	}
	if err := json.Unmarshal([]byte(out), &recs); err != nil || len(recs) != 5 {
		t.Fatalf("audit log --json: %v, %d records\n%s", err, len(recs), out)
	}
	if r := recs[3]; r.Type != "deployment.approved" || r.Explanation.Approver != "grace.hopper" ||
		r.Explanation.Author != "Ada <ada@example.com> (git)" || r.Explanation.Cause != "commit "+sha || r.Hash == "" {
		t.Errorf("approved record in JSON: %+v", r)
	}
	// A payload naming no cause is explained by the message it answered, in JSON as in the text.
	if r := recs[4]; r.Type != "deployment.applied" || r.Explanation.Cause != "after deployment.approved prod/vpc/core#4" {
		t.Errorf("applied record in JSON: %+v; want the cause the text prints", r)
	}
}

// The case: the newest record of a chain deleted. Verify exits 1 naming it; rolled
// back consistently, only a checkpoint taken before finds it, by digest or via the witness.
func TestAuditVerifyFindsRemovals(t *testing.T) {
	g, args := auditState(t)
	run := func(cmd ...string) (int, string, string) { return karmaWith(t, g, append(cmd, args...)...) }
	code, out, errOut := run("audit", "head")
	if code != 0 {
		t.Fatalf("audit head: exit %d %s", code, errOut)
	}
	digest := strings.SplitN(out, "\n", 2)[0]
	// 57 messages (the push's git.pushed among them), and the two approvals (cli.change_approved)
	if _, err := audit.ParseDigest(digest); err != nil || !strings.Contains(out, "13 chain(s), 59 record(s)") {
		t.Fatalf("audit head printed %q", out)
	}
	if code, out, errOut = run("audit", "head", "--witness"); code != 0 || !strings.Contains(out, digest) ||
		!strings.Contains(out, "witnessed: version 1 of /karma/audit/checkpoint") {
		t.Fatalf("audit head --witness: exit %d\n%s%s", code, out, errOut)
	}
	for _, against := range [][]string{nil, {"--against", digest}, {"--against", "witness"}, {"--against", "witness", "--witness-version", "1"}} {
		if code, out, errOut := run(append([]string{"audit", "verify"}, against...)...); code != 0 || !strings.Contains(out, "14 chain(s) verified, 60 record(s)") {
			t.Errorf("audit verify %v before tampering: exit %d\n%s%s", against, code, out, errOut)
		}
	}

	rawSQL(t, args, removeNewest("prod/vpc/core", false)...)
	code, out, errOut = run("audit", "verify")
	if code != 1 || strings.Contains(out, "verified") ||
		!strings.Contains(errOut, "1 of 14 chain(s) broken") || !strings.Contains(errOut, "chain prod/vpc/core: seq 5: missing (the chain's head says the last record is seq 5)") {
		t.Errorf("audit verify after deleting the newest record: exit %d\n%s%s", code, out, errOut)
	}

	rawSQL(t, args, removeNewest("prod/vpc/core", true)...) // the next one, head rolled back to seq 3
	rawSQL(t, args, removeNewest("prod/ecs-cluster/core", true)...)
	if code, out, errOut := run("audit", "verify"); code != 0 {
		t.Fatalf("a consistent rollback should pass a plain verify (the test needs one): exit %d\n%s%s", code, out, errOut)
	}
	for _, against := range [][]string{{"--against", digest}, {"--against", "witness"}} {
		code, out, errOut := run(append([]string{"audit", "verify"}, against...)...)
		if code != 1 || !strings.Contains(errOut, "2 of 14 chain(s) broken") ||
			!strings.Contains(errOut, "chain prod/vpc/core: seq 4: missing: checkpoint "+digest[:12]) ||
			!strings.Contains(errOut, "has this chain up to seq 5; it now ends at seq 3") ||
			!strings.Contains(errOut, "chain prod/ecs-cluster/core: seq 4: missing") {
			t.Errorf("audit verify %v after a rollback: exit %d\n%s%s", against, code, out, errOut)
		}
	}
	code, out, _ = run("audit", "verify", "--against", "witness", "--json")
	var rep struct {
		Chains  int
		Broken  []audit.TamperError
		Against struct{ Digest string }
		Witness struct{ Version int64 }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || len(rep.Broken) != 2 ||
		rep.Broken[1] != (audit.TamperError{Chain: "prod/vpc/core", Seq: 4, What: rep.Broken[1].What}) ||
		rep.Against.Digest != digest || rep.Witness.Version != 1 {
		t.Errorf("audit verify --json: exit %d, %v, %+v\n%s", code, err, rep, out)
	}
}

// Usage errors exit 2; a checkpoint or witness version that is not there exits 1, naming it.
func TestAuditVerifyBadInput(t *testing.T) {
	ex := examples(t)
	unknown := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--against", "yesterday"}, 2, `--against: checkpoint digest "yesterday": want 64 hexadecimal digits, or "witness"`},
		{[]string{"--witness-version", "2"}, 2, "--witness-version needs --against witness"},
		{[]string{"--against", "witness", "--witness-version", "-1"}, 2, "--witness-version -1: want a version number"},
		{[]string{"--against", "witness", "--params-backend", "none"}, 2, "--params-backend none has none"},
		{[]string{"--against", unknown}, 1, "checkpoint " + unknown + " is not in the audit log"},
		{[]string{"--against", "witness"}, 1, "witness /karma/audit/checkpoint (parameter store of env audit): audit: not found: the witness holds no checkpoint yet"},
	} {
		code, _, stderr := karma(t, append(append([]string{"audit", "verify"}, tc.args...), ex...)...)
		if code != tc.code || !strings.Contains(stderr, tc.err) {
			t.Errorf("audit verify %v: exit %d %q; want exit %d containing %q", tc.args, code, stderr, tc.code, tc.err)
		}
	}
	if code, _, stderr := karma(t, append([]string{"audit", "head", "--witness", "--witness-param", "no-slash"}, ex...)...); code != 1 || !strings.Contains(stderr, `"no-slash"`) {
		t.Errorf("audit head --witness-param no-slash: exit %d %q", code, stderr)
	}
}
