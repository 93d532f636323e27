package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// A password in a URL is a secret whatever key holds it: GET /components shows a config's
// connection string, and GET /log a body holding one, with the password replaced (a ${…}
// reference kept), and a proposal made from the file shown, the placeholder still in the URL,
// is refused.
func TestURLPasswordsRedacted(t *testing.T) {
	t.Parallel()
	const pw = "hunter2-in-a-url"
	h := newHarnessWith(t, func(files map[string]string) {
		var doc map[string]any
		if err := json.Unmarshal([]byte(files["iac/prod/vpc/core/config.json"]), &doc); err != nil {
			t.Fatal(err)
		}
		doc["tags"].(map[string]any)["Database"] = "postgres://app:" + pw + "@db.internal:5432/app"
		b, _ := json.MarshalIndent(doc, "", "  ")
		files["iac/prod/vpc/core/config.json"] = string(b)
	})
	// a runtime that is not JSON (someone else wrote it): a string, its password hidden as well
	if _, err := h.params("prod").Put(t.Context(), paramsPut("/iac/vpc/core/runtime", "postgres://app:rt-"+pw+"@db/app")); err != nil {
		t.Fatal(err)
	}
	r := h.call("GET", "/components/prod/vpc/core", "reader", nil).want(http.StatusOK)
	if strings.Contains(string(r.body), pw) {
		t.Fatalf("GET /components shows the password:\n%s", r.body)
	}
	var v ComponentView
	r.decode(&v)
	const shown = "postgres://app:" + Redacted + "@db.internal:5432/app"
	if tags, _ := v.Config.(map[string]any)["tags"].(map[string]any); tags["Database"] != shown {
		t.Errorf("config tags shown as %v", tags)
	}
	if v.Source == nil || !v.Source.Redacted {
		t.Fatalf("source %+v: want it marked redacted", v.Source)
	}
	if v.Runtime == nil || v.Runtime.Value != "postgres://app:"+Redacted+"@db/app" {
		t.Errorf("runtime shown as %+v", v.Runtime)
	}
	p := h.call("POST", "/request-change", "writer", request("prod/vpc/core", v.Source.Content.(map[string]any))).
		want(http.StatusUnprocessableEntity).problem()
	if !slices.Equal(p.pointers(), []string{"/proposed_change/tags/Database"}) {
		t.Errorf("proposal holding the placeholder in a URL: %+v", p)
	}
	// a script's DB_PASSWORD=(sensitive value), as shown, is no value to commit either
	script, _ := json.Marshal(map[string]any{"user_data": "export DB_PASSWORD=" + Redacted + "\n", "env": []any{map[string]any{"name": "API_KEY", "value": Redacted}}})
	if got := PlaceholderPointers(script); !slices.Equal(got, []string{"/env/0/value", "/user_data"}) {
		t.Errorf("PlaceholderPointers = %v", got)
	}
	if got := string(RedactBody([]byte("DB_PASSWORD=envpass1 x"))); got != `"DB_PASSWORD=`+Redacted+` x"` {
		t.Errorf("RedactBody of a body that is not JSON = %s", got)
	}
	body := []byte(`{"payload":{"remote":"https://bot:ghp_t0k3n@github.com/acme/iac.git","url":"postgres://app:${db/main.runtime.password}@db/app"}}`)
	got := string(RedactBody(body))
	if strings.Contains(got, "ghp_t0k3n") || !strings.Contains(got, "${db/main.runtime.password}") {
		t.Errorf("RedactBody = %s", got)
	}
}
