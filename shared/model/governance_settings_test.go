package model

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestSettingsGovernance(t *testing.T) {
	t.Parallel()
	good := fstest.MapFS{SettingsFile: {Data: []byte(`{"environments": {"prod": {"protected": true, "approvals": 2, "approval_expiry": "72h"}},
		"identities": {"ada": ["Ada Lovelace <ada@example.com>"]}, "policies_dir": "rules"}`)}}
	s, err := LoadSettingsFS(good, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	prod := s.For("prod")
	if !prod.Protected || prod.Required() != 2 || time.Duration(prod.ApprovalExpiry) != 72*time.Hour || !prod.Identities.Same("ada", "ada@example.com") || s.PoliciesDir != "rules" {
		t.Errorf("prod rules = %+v, policies in %q", prod, s.PoliciesDir)
	}
	if d, _ := LoadSettingsFS(fstest.MapFS{}, Settings{}); d.PoliciesDir != "policies" {
		t.Errorf("default policies_dir = %q", d.PoliciesDir)
	}
	for name, tc := range map[string]struct{ json, want string }{
		"every problem with its pointer": {`{"environments": {"prod": {"protected": true, "auto_approve": "always"}}, "identities": {"ada": [""]}}`,
			`karma.json: at /environments/prod/auto_approve: "always": a protected environment is never auto-approved`},
		"an unknown rule":        {`{"environments": {"prod": {"protect": true}}}`, `unknown field "protect"`},
		"policies outside":       {`{"policies_dir": "../elsewhere"}`, `policies_dir "../elsewhere": want a folder inside the repository`},
		"a duration that is not": {`{"environments": {"prod": {"approval_expiry": 3}}}`, `want a duration such as "72h"`},
	} {
		_, err := LoadSettingsFS(fstest.MapFS{SettingsFile: {Data: []byte(tc.json)}}, Settings{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
