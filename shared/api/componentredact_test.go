package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// GET /components redacts as GET /log does: a secret-named value inside a JSON document held
// in a string — a tag of the environment file (so of the resolved config), a module output
// encoded with jsonencode — is replaced, not only one at the document's own keys; and a proposal
// made from the file shown, the placeholder still inside such a string, is refused.
func TestComponentRedactsSecretsInsideJSONStrings(t *testing.T) {
	t.Parallel()
	const inConfig, inRuntime = "hunter2-in-a-tag", "s3cr3t-in-an-output"
	h := newHarnessWith(t, func(files map[string]string) {
		var doc map[string]any
		if err := json.Unmarshal([]byte(files["iac/prod/vpc/core/config.json"]), &doc); err != nil {
			t.Fatal(err)
		}
		doc["tags"].(map[string]any)["Bootstrap"] = `{"db_password":"` + inConfig + `","user":"app"}`
		b, _ := json.MarshalIndent(doc, "", "  ")
		files["iac/prod/vpc/core/config.json"] = string(b)
	})
	rt, _ := json.Marshal(map[string]any{"vpc_id": "vpc-123", "connection": `{"host":"db.internal","password":"` + inRuntime + `"}`})
	if _, err := h.params("prod").Put(t.Context(), paramsPut("/iac/vpc/core/runtime", string(rt))); err != nil {
		t.Fatal(err)
	}
	r := h.call("GET", "/components/prod/vpc/core", "reader", nil).want(http.StatusOK)
	if strings.Contains(string(r.body), inConfig) || strings.Contains(string(r.body), inRuntime) {
		t.Fatalf("GET /components shows a secret:\n%s", r.body)
	}
	var v ComponentView
	r.decode(&v)
	const shownTag = `{"db_password":"` + Redacted + `","user":"app"}`
	if tags, _ := v.Config.(map[string]any)["tags"].(map[string]any); tags["Bootstrap"] != shownTag || tags["Environment"] != "prod" {
		t.Errorf("config tags shown as %v", tags)
	}
	if v.Runtime == nil || v.Runtime.Value.(map[string]any)["connection"] != `{"host":"db.internal","password":"`+Redacted+`"}` {
		t.Errorf("runtime shown as %+v", v.Runtime)
	}
	if v.Source == nil || !v.Source.Redacted {
		t.Fatalf("source %+v: want it marked redacted", v.Source)
	}
	if tags, _ := v.Source.Content.(map[string]any)["tags"].(map[string]any); tags["Bootstrap"] != shownTag {
		t.Errorf("source tags shown as %v", tags)
	}

	// Proposing the file as shown would commit the placeholder in place of the password.
	p := h.call("POST", "/request-change", "writer", request("prod/vpc/core", v.Source.Content.(map[string]any))).
		want(http.StatusUnprocessableEntity).problem()
	if !slices.Equal(p.pointers(), []string{"/proposed_change/tags/Bootstrap"}) {
		t.Errorf("proposal holding the placeholder in a JSON string: %+v", p)
	}
	file, _ := json.Marshal(map[string]any{"tags": map[string]any{"Bootstrap": shownTag}})
	if got := PlaceholderPointers(file); !slices.Equal(got, []string{"/tags/Bootstrap"}) {
		t.Errorf("PlaceholderPointers (the CLI's propose-change) = %v", got)
	}
}
