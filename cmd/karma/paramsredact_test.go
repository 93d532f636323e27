package main

import (
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/api"
)

// `karma params list` and `get` show a String parameter's JSON document — a runtime whose module
// outputs a password it does not mark sensitive, a config with a literal one — with secret-named
// values redacted, as GET /components shows the same runtime and config, in the text as with
// --json; the parameter is untouched. And `params put` refuses a value still holding the
// placeholder, which would replace the secret.
func TestParamsListAndGetRedactSecretNamedValues(t *testing.T) {
	repo := writeFiles(t, map[string]string{"iac/prod/app/a/config.json": `{"size":3}`})
	g := &globals{paramsBackend: "embedded"}
	base := []string{"--repo", repo, "--state-dir", t.TempDir(), "--env", "prod"}
	const secret, inJSON = "hunter2-output", "s3cr3t-in-a-string"
	value := `{"endpoint":"db.internal","db_password":"` + secret + `","conn":"{\"password\":\"` + inJSON + `\"}"}`
	karmaOK(t, g, append([]string{"params", "put", "/iac/app/a/runtime", value}, base...)...)
	for _, args := range [][]string{
		{"params", "get", "/iac/app/a/runtime"}, {"params", "get", "/iac/app/a/runtime", "--json"},
		{"params", "list"}, {"params", "list", "--json"},
	} {
		out := karmaOK(t, g, append(args, base...)...)
		if strings.Contains(out, secret) || strings.Contains(out, inJSON) || !strings.Contains(out, api.Redacted) {
			t.Errorf("%v shows a secret, or no redaction:\n%s", args, out)
		}
	}
	// Putting back what get showed would write the placeholder as the password: refused.
	shown := karmaOK(t, g, append([]string{"params", "get", "/iac/app/a/runtime"}, base...)...)
	code, _, errOut := karmaWith(t, g, append([]string{"params", "put", "/iac/app/a/runtime", strings.TrimSpace(shown)}, base...)...)
	if code == 0 || !strings.Contains(errOut, "/db_password") || !strings.Contains(errOut, "/conn") {
		t.Errorf("params put of the redacted value: exit %d, %s", code, errOut)
	}
	if got := karmaOK(t, g, append([]string{"params", "get", "/iac/app/a/runtime", "--json"}, base...)...); !strings.Contains(got, `"version": 1`) {
		t.Errorf("the refused put wrote a version:\n%s", got)
	}
	// A String that is not JSON: a connection string, an environment file.
	const inURL, inEnv = "pg-pass-in-a-string", "hunter4-env"
	karmaOK(t, g, append([]string{"params", "put", "/iac/app/a/dsn", "postgres://app:" + inURL + "@db/app DB_PASSWORD=" + inEnv}, base...)...)
	for _, args := range [][]string{{"params", "get", "/iac/app/a/dsn"}, {"params", "list", "--json"}} {
		if out := karmaOK(t, g, append(args, base...)...); strings.Contains(out, inURL) || strings.Contains(out, inEnv) || !strings.Contains(out, "postgres://app:"+api.Redacted+"@db/app") {
			t.Errorf("%v shows a secret of a text String:\n%s", args, out)
		}
	}
	shown = karmaOK(t, g, append([]string{"params", "get", "/iac/app/a/dsn"}, base...)...)
	if code, _, errOut := karmaWith(t, g, append([]string{"params", "put", "/iac/app/a/dsn", strings.TrimSpace(shown)}, base...)...); code == 0 {
		t.Errorf("params put of a redacted text String: exit 0, %s", errOut)
	}
}
