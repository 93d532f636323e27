package governance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A commit can tighten the floor's rules, never loosen them.
func TestStricterKeepsTheFloor(t *testing.T) {
	t.Parallel()
	floor := Settings{Environments: map[string]Environment{
		"prod": {Protected: true, Approvals: 2, ApprovalExpiry: Duration(72 * time.Hour)},
		"dev":  {AutoApprove: AutoApproveAlways},
	}, Identities: Identities{"ada": {"Ada <ada@example.com>"}}}
	cases := []struct {
		name   string
		commit Settings
		env    string
		want   Environment
	}{
		{"a commit that unprotects prod", Settings{Environments: map[string]Environment{"prod": {AutoApprove: AutoApproveAlways}}}, "prod",
			Environment{Protected: true, Approvals: 2, ApprovalExpiry: Duration(72 * time.Hour)}},
		{"a commit that drops prod from karma.json", Settings{}, "prod",
			Environment{Protected: true, Approvals: 2, ApprovalExpiry: Duration(72 * time.Hour)}},
		{"a commit that asks for more", Settings{Environments: map[string]Environment{"prod": {Protected: true, Approvals: 3, ApprovalExpiry: Duration(time.Hour)}}}, "prod",
			Environment{Protected: true, Approvals: 3, ApprovalExpiry: Duration(time.Hour)}},
		{"a commit that stops dev's auto-approval", Settings{Environments: map[string]Environment{"dev": {AutoApprove: AutoApproveNever}}}, "dev",
			Environment{AutoApprove: AutoApproveNever}},
		{"an environment the floor does not list", Settings{Environments: map[string]Environment{"qa": {AutoApprove: AutoApproveAlways}}}, "qa",
			Environment{AutoApprove: AutoApproveAlways}},
	}
	for _, c := range cases {
		got := Stricter(floor.For(c.env), c.commit.For(c.env))
		if got.Environment != c.want || got.AutoApprovePolicy() != c.want.AutoApprovePolicy() || len(got.Environment.problems("")) > 0 {
			t.Errorf("%s: %+v, want %+v", c.name, got.Environment, c.want)
		}
		if !got.Identities.Same("ada", "Ada Lovelace <ada@example.com>") {
			t.Errorf("%s: the floor's identities were lost", c.name)
		}
	}
}

func TestLoadFloor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s, err := LoadFloor(write("ok.json", `{"environments": {"prod": {"protected": true, "approvals": 2}}}`))
	if err != nil || !s.For("prod").Protected || s.For("prod").Approvals != 2 {
		t.Fatalf("%+v %v", s, err)
	}
	for name, body := range map[string]string{
		"typo.json":    `{"environments": {"prod": {"protect": true}}}`,
		"invalid.json": `{"environments": {"prod": {"approvals": 11}}}`,
		"notjson.json": `{"environments": `,
		"contra.json":  `{"environments": {"prod": {"protected": true, "auto_approve": "always"}}}`,
	} {
		if _, err := LoadFloor(write(name, body)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
	if _, err := LoadFloor(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("a missing file: %v", err)
	}
}

// A commit's identity map joined with the floor's cannot split one of the floor's persons in
// two: a name the commit lists for another key still belongs to the floor's person, so its
// author stays ineligible to approve under another of their names, and their two names stay one
// approver.
func TestStricterIdentitiesCannotSplitAPerson(t *testing.T) {
	t.Parallel()
	floor := Settings{Environments: map[string]Environment{"prod": {Protected: true}},
		Identities: Identities{"ada": {"Ada <ada@example.com>", "arn:aws:iam::210987654321:user/ada"}}}
	commit := Settings{Identities: Identities{"aaa": {"ada@example.com"}}}
	if ps := commit.Problems(); len(ps) > 0 {
		t.Fatalf("the commit's karma.json alone is valid: %v", ps)
	}
	ids := Stricter(floor.For("prod"), commit.For("prod")).Identities
	author, other := "Ada Lovelace <ada@example.com>", "arn:aws:iam::210987654321:user/ada"
	if !ids.Same(author, other) {
		t.Errorf("%q and %q: %s and %s, want one person", author, other, ids.Person(author), ids.Person(other))
	}
	if ids.Same(author, "Bob <bob@example.com>") || ids.Same("aaa", "bob") {
		t.Error("people the maps do not join are one person")
	}
}
