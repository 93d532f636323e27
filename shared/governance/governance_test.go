package governance

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestCanonical(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"Ada Lovelace <Ada@Example.com>", "email:ada@example.com"},
		{"  ada@example.com ", "email:ada@example.com"},
		{"arn:aws:iam::210987654321:user/Ada", "arn:aws:iam::210987654321:user/Ada"},
		{"Release-Bot", "name:release-bot"},
		{"Ada <not an email>", "name:ada <not an email>"},
	} {
		if got := Canonical(tc.in); got != tc.want {
			t.Errorf("Canonical(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSame(t *testing.T) {
	t.Parallel()
	ids := Identities{"ada": {"Ada Lovelace <ada@example.com>", "arn:aws:iam::210987654321:user/ada", "ada-release"}}
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"Ada <ada@example.com>", "Ada Lovelace <ADA@example.com>", true}, // one email, two display names
		{"ada@example.com", "Ada <ada@example.com>", true},
		{"ada-release", "Ada <ada@example.com>", true}, // through the map
		{"arn:aws:iam::210987654321:user/ada", "ada", true},
		{"ADA", "ada-release", true}, // the person's key is one of their names, case-insensitively
		{"arn:aws:iam::210987654321:user/ADA", "ada", false},
		{"grace", "Ada <ada@example.com>", false},
		{"Grace <grace@example.com>", "grace", false}, // unmapped: a CLI user is not an email
		{"", "", false},
	} {
		if got := ids.Same(tc.a, tc.b); got != tc.want {
			t.Errorf("Same(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSettingsDecodeAndDefaults(t *testing.T) {
	t.Parallel()
	var s Settings
	if err := json.Unmarshal([]byte(`{"environments": {"prod": {"protected": true, "approvals": 2, "approval_expiry": "72h"}, "dev": {"auto_approve": "always"}}}`), &s); err != nil {
		t.Fatal(err)
	}
	if p := s.Problems(); len(p) != 0 {
		t.Fatal(p)
	}
	prod, dev, qa := s.For("prod"), s.For("dev"), s.For("qa")
	if !prod.Configured || prod.Required() != 2 || time.Duration(prod.ApprovalExpiry) != 72*time.Hour || prod.AutoApprovePolicy() != AutoApproveNever {
		t.Errorf("prod = %+v", prod)
	}
	if dev.AutoApprovePolicy() != AutoApproveAlways || dev.Required() != 1 {
		t.Errorf("dev = %+v", dev)
	}
	if qa.Configured || qa.Required() != 1 || qa.AutoApprovePolicy() != AutoApproveAllowed {
		t.Errorf("an environment not listed = %+v", qa)
	}
	b, _ := json.Marshal(prod)
	if !strings.Contains(string(b), `"approval_expiry":"72h0m0s"`) {
		t.Errorf("rules as the change set keeps them: %s", b)
	}
	if err := json.Unmarshal([]byte(`{"environments": {"prod": {"approval_expiry": "three days"}}}`), &s); err == nil || !strings.Contains(err.Error(), `want a duration such as "72h"`) {
		t.Errorf("a bad duration: %v", err)
	}
}

func TestProblemsReportsEverything(t *testing.T) {
	t.Parallel()
	s := Settings{
		Environments: map[string]Environment{
			"prod":    {Protected: true, AutoApprove: AutoApproveAlways, Approvals: 11},
			"sandbox": {AutoApprove: "sometimes", ApprovalExpiry: Duration(-time.Hour)},
		},
		Identities: Identities{"ada": {"ada@example.com", ""}, "grace": {"Ada <ADA@example.com>"}},
	}
	var got []string
	for _, p := range s.Problems() {
		got = append(got, p.Pointer+": "+p.Message)
	}
	want := []string{
		"/environments/prod/approvals: 11: want 1 to 10 distinct approvers",
		`/environments/prod/auto_approve: "always": a protected environment is never auto-approved (leave it out, or say "never")`,
		"/environments/prod/approvals: 11 approvals in an environment that approves every change automatically",
		"/environments/sandbox/approval_expiry: -1h0m0s: want a positive duration such as \"72h\"",
		`/environments/sandbox/auto_approve: "sometimes": want "allowed", "never" or "always"`,
		"/identities/ada/1: want a name (Git author, email, IAM ARN, CLI user or token name), found an empty string",
		`/identities/grace/0: "Ada <ADA@example.com>" names grace, already a name of ada: one name, one person`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
