package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/terraform"
)

// planSecret, the master password of a database in a plan: a module variable Terraform does
// not mark sensitive, so the plan stage records it as Terraform showed it.
const planSecret, planSecretInJSON = "hunter2-master-password", "s3cr3t-in-user-data"

// planSecretInEntry and planSecretInK8s: values no key names as secrets, in an environment's
// name/value list and in a Kubernetes Secret's data.
const planSecretInEntry, planSecretInK8s = "env-list-db-pass", "azhzLXNlY3JldC1kYXRh"

// secretPlan is terraform.Noop whose plans also create a database with its master password in
// the clear, and a user_data holding a JSON document with another.
type secretPlan struct{ terraform.Noop }

func (r *secretPlan) Plan(ctx context.Context, ws terraform.Workspace) (terraform.PlanResult, error) {
	res, err := r.Noop.Plan(ctx, ws)
	if err == nil && len(res.Resources) > 0 {
		res.Summary.Add++
		res.Resources = append(res.Resources, message.ResourceChange{Address: "aws_db_instance.main", Actions: []string{"create"},
			After: map[string]any{"engine": "postgres", "master_password": planSecret, "port": 5432,
				"user_data":   `{"db_password":"` + planSecretInJSON + `","port":5432}`,
				"environment": []any{map[string]any{"name": "DB_PASSWORD", "value": planSecretInEntry}, map[string]any{"name": "PORT", "value": "5432"}},
				"manifest":    map[string]any{"apiVersion": "v1", "kind": "Secret", "data": map[string]any{"key": planSecretInK8s}}}})
	}
	return res, err
}

// GET /changes/{id} shows a change's plans (held ones from the change set, the others from the
// audit log's deployment.planned) with secret-named values redacted as GET /log shows them —
// not only the values Terraform marked sensitive — while the audit log keeps the plan as
// recorded.
func TestChangePlansRedactSecretNamedValues(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.tf = &secretPlan{}
	h.pipeline()
	var created ChangeCreated
	h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(30))).want(http.StatusCreated).decode(&created)
	h.runUntilIdle()

	check := func(when string, held bool) {
		t.Helper()
		r := h.call("GET", "/changes/"+url.PathEscape(created.ChangeID), "reader", nil).want(http.StatusOK)
		if strings.Contains(string(r.body), planSecret) || strings.Contains(string(r.body), planSecretInJSON) ||
			strings.Contains(string(r.body), planSecretInEntry) || strings.Contains(string(r.body), planSecretInK8s) {
			t.Fatalf("%s: GET /changes/{id} shows a secret:\n%s", when, r.body)
		}
		var detail ChangeDetail
		r.decode(&detail)
		if len(detail.Plans) != 1 || detail.Plans[0].Held != held || len(detail.Plans[0].Resources) != 2 {
			t.Fatalf("%s: plans %+v", when, detail.Plans)
		}
		after, _ := detail.Plans[0].Resources[1].After.(map[string]any)
		if after["master_password"] != Redacted || after["engine"] != "postgres" || after["port"] != 5432.0 ||
			after["user_data"] != `{"db_password":"`+Redacted+`","port":5432}` {
			t.Errorf("%s: the database's values shown as %v", when, after)
		}
	}
	check("held for approval", true)

	h.call("POST", "/changes/"+url.PathEscape(created.ChangeID)+"/approve", "approver", nil).want(http.StatusOK)
	h.runUntilIdle()
	check("applied, the plan from the audit log", false)

	// What is shown is redacted, not what is kept: the change set and the audit log hold the
	// plan as planned.
	cs, err := h.changeSets.Get(t.Context(), created.ChangeID)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range cs.Nodes {
		if n.Plan != nil && len(n.Plan.Resources) > 1 {
			if after, _ := n.Plan.Resources[1].After.(map[string]any); after["master_password"] != planSecret {
				t.Errorf("the change set's plan was changed: %v", after)
			}
		}
	}
	r := h.call("GET", "/log?correlation="+url.QueryEscape(cs.CorrelationID), "reader", nil).want(http.StatusOK)
	if strings.Contains(string(r.body), planSecret) || strings.Contains(string(r.body), planSecretInEntry) || strings.Contains(string(r.body), planSecretInK8s) {
		t.Errorf("GET /log shows the secret:\n%s", r.body)
	}
}
