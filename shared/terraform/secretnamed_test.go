package terraform

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// A password written in a config (not read from a SecureString: not in Workspace.Sensitive) is
// passed to Terraform in config.json, and Terraform quotes it in its errors
// (`local.config.master_password is "…"`): what is kept of them — the deployment's failure,
// shown by GET /changes/{id}, GET /deployments/{id} and the CLI, recorded in deployment.failed
// — is scrubbed of the values under secret-named keys too, as the API redacts them. Such a value
// is not a SecureString's: an output holding it is still published (SensitiveOutputs).
func TestSecretNamedConfigValuesRedactedFromErrors(t *testing.T) {
	t.Parallel()
	const pw, nested, plain = "hunter2-literal", "tok-in-a-list", "db.internal"
	ws := Workspace{Env: "prod", Type: "db", Nickname: "main",
		Config: json.RawMessage(`{"host":"` + plain + `","master_password":"` + pw + `","credentials":[{"user":"app","value":"` + nested + `"}],"port":5432}`)}
	s := &session{ws: ws, log: newTail(), redact: newRedactor(ws)}
	s.log.Write([]byte("Error: Invalid value\n  local.config.master_password is \"" + pw + "\"\n  local.config.credentials[0].value is \"" + nested + "\"\n  local.config.host is \"" + plain + "\"\n"))
	err := s.fail(OpPlan, errors.New("exit status 1"))
	if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), nested) {
		t.Errorf("error holds a secret-named value: %s", err)
	}
	if !strings.Contains(err.Error(), plain) || !strings.Contains(err.Error(), "Invalid value") {
		t.Errorf("error lost the rest of the log: %s", err)
	}
	ds := s.redact.diagnostics([]Diagnostic{{Summary: "Invalid value", Detail: "master_password is \"" + pw + "\""}})
	if strings.Contains(ds[0].Detail, pw) {
		t.Errorf("diagnostic holds the password: %+v", ds[0])
	}
	url := newRedactor(Workspace{Env: "prod", Type: "db", Nickname: "main", Config: json.RawMessage(`{"url":"postgres://app:pg-url-pass@db/app"}`)})
	if got := url.apply(`local.config.url is "postgres://app:pg-url-pass@db/app"`); strings.Contains(got, "pg-url-pass") || !strings.Contains(got, "postgres://app:") {
		t.Errorf("a URL's password in an error: %s", got)
	}
	// name/value entries (an ECS task's environment), inside JSON held in a string too, and a
	// script's DB_PASSWORD=…
	ecs := newRedactor(Workspace{Env: "prod", Type: "svc", Nickname: "api", Config: json.RawMessage(`{"environment":[{"name":"DB_PASSWORD","value":"entry-pass-1"},{"name":"PORT","value":"8080"}],` +
		`"container_definitions":"[{\"environment\":[{\"Name\":\"API_KEY\",\"Value\":\"defs-key-2\"}]}]","user_data":"export AUTH_TOKEN=script-tok-3\n"}`)})
	log := `local.config.environment[0].value is "entry-pass-1"; local.config.container_definitions is "[{\"environment\":[{\"Name\":\"API_KEY\",\"Value\":\"defs-key-2\"}]}]"; user_data "export AUTH_TOKEN=script-tok-3"; port 8080`
	// and what the config does not hold: a provider's error, another component's connection string
	log += `; Error: dial postgres://app:provider-pass-4@db: refused; + connection = "Server=db;Password=remote-pw-5;"`
	if got := ecs.apply(log); strings.Contains(got, "provider-pass-4") || strings.Contains(got, "remote-pw-5") {
		t.Errorf("secrets in text Terraform printed: %s", got)
	}
	if got := ecs.apply(log); strings.Contains(got, "entry-pass-1") || strings.Contains(got, "defs-key-2") || strings.Contains(got, "script-tok-3") || !strings.Contains(got, "8080") {
		t.Errorf("secrets of name/value entries in an error: %s", got)
	}
	if keys := SensitiveOutputs(ws, Outputs{"dsn": json.RawMessage(`"postgres://app:` + pw + `@db"`)}); len(keys) != 0 {
		t.Errorf("SensitiveOutputs = %v: a config's literal value is no SecureString's", keys)
	}
}
