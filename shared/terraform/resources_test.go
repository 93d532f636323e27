package terraform

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/usekarma/karma/shared/message"
)

func readPlan(t *testing.T, data []byte) *tfjson.Plan {
	t.Helper()
	var p tfjson.Plan
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// The fixture is a real `terraform show -json` (see plan-mixed.tf.txt).
func TestResourceChangesFixture(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "plan-mixed.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, truncated := ResourceChanges(readPlan(t, data))
	if truncated {
		t.Error("truncated with 7 changes")
	}
	// same (no-op) and the data source read are left out; nulls are dropped; the update keeps
	// only what changes; unknown attributes say so.
	want := []message.ResourceChange{
		{Address: "terraform_data.cbd", Actions: []string{"create", "delete"},
			Before: map[string]any{"id": "6ca1c36b-31f3-cc2f-3195-a5d4f180d43f", "triggers_replace": 1.0},
			After:  map[string]any{"id": UnknownValue, "triggers_replace": 2.0}},
		{Address: "terraform_data.created[0]", Actions: []string{"create"},
			After: map[string]any{"id": UnknownValue, "input": 0.0, "output": UnknownValue}},
		{Address: "terraform_data.created[1]", Actions: []string{"create"},
			After: map[string]any{"id": UnknownValue, "input": 1.0, "output": UnknownValue}},
		{Address: "terraform_data.deleted[0]", Actions: []string{"delete"},
			Before: map[string]any{"id": "3c78869a-0671-7e94-eca0-b44c386b3903", "input": "bye", "output": "bye"}},
		{Address: "terraform_data.replaced", Actions: []string{"delete", "create"},
			Before: map[string]any{"id": "6d377f2d-87bb-2a12-c166-b18f7347e138", "triggers_replace": 1.0},
			After:  map[string]any{"id": UnknownValue, "triggers_replace": 2.0}},
		{Address: "terraform_data.updated", Actions: []string{"update"},
			Before: map[string]any{"input": 1.0, "output": 1.0},
			After:  map[string]any{"input": 2.0, "output": UnknownValue}},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		t.Fatalf("ResourceChanges =\n%s", g)
	}
	if got, _ := ResourceChanges(nil); got != nil {
		t.Errorf("ResourceChanges(nil) = %v", got)
	}
}

// Sensitive values never appear, at any depth, before or after.
func TestResourceChangesRedactsSensitive(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-hunter2"
	plan := `{"format_version":"1.2","resource_changes":[{"address":"aws_db_instance.main","mode":"managed","type":"aws_db_instance","name":"main",
	  "change":{"actions":["update"],
	    "before":{"password":"` + secret + `","engine":"postgres","tags":{"Owner":"a"},"users":[{"name":"app","token":"` + secret + `"}]},
	    "after":{"password":"` + secret + `x","engine":"postgres","tags":{"Owner":"b"},"users":[{"name":"app","token":"` + secret + `y"}]},
	    "before_sensitive":{"password":true,"users":[{"token":true}]},
	    "after_sensitive":{"password":true,"users":[{"token":true}]},
	    "after_unknown":{}}},
	  {"address":"random_password.p","mode":"managed","type":"random_password","name":"p",
	   "change":{"actions":["create"],"before":null,"after":{"length":32,"result":"` + secret + `"},"after_sensitive":true,"after_unknown":{}}}]}`
	got, _ := ResourceChanges(readPlan(t, []byte(plan)))
	b, _ := json.Marshal(got)
	if strings.Contains(string(b), secret) {
		t.Fatalf("a sensitive value is shown: %s", b)
	}
	want := []message.ResourceChange{
		{Address: "aws_db_instance.main", Actions: []string{"update"},
			// the password and a token changed: shown as changing, never their values; engine did not.
			Before: map[string]any{"password": SensitiveValue, "tags": map[string]any{"Owner": "a"},
				"users": []any{map[string]any{"name": "app", "token": SensitiveValue}}},
			After: map[string]any{"password": SensitiveValue, "tags": map[string]any{"Owner": "b"},
				"users": []any{map[string]any{"name": "app", "token": SensitiveValue}}}},
		{Address: "random_password.p", Actions: []string{"create"}, After: SensitiveValue},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ResourceChanges = %s", b)
	}
}

func TestResourceChangesLimits(t *testing.T) {
	t.Parallel()
	var rcs []string
	for i := range message.MaxPlanResources + 1 {
		rcs = append(rcs, fmt.Sprintf(`{"address":"terraform_data.n[%d]","mode":"managed","change":{"actions":["create"],"after":{"input":%d}}}`, i, i))
	}
	got, truncated := ResourceChanges(readPlan(t, []byte(`{"format_version":"1.2","resource_changes":[`+strings.Join(rcs, ",")+`]}`)))
	if len(got) != message.MaxPlanResources || !truncated {
		t.Errorf("%d changes listed of %d, truncated %v", len(got), message.MaxPlanResources+1, truncated)
	}

	big := strings.Repeat("x", message.MaxPlanValueBytes)
	mid := strings.Repeat("y", message.MaxPlanValueBytes/2)
	rcs = []string{fmt.Sprintf(`{"address":"a.big","mode":"managed","change":{"actions":["create"],"after":{"input":%q}}}`, big)}
	for i := range message.MaxPlanValuesBytes/(message.MaxPlanValueBytes/2) + 1 {
		rcs = append(rcs, fmt.Sprintf(`{"address":"a.mid[%d]","mode":"managed","change":{"actions":["create"],"after":{"input":%q}}}`, i, mid))
	}
	got, _ = ResourceChanges(readPlan(t, []byte(`{"format_version":"1.2","resource_changes":[`+strings.Join(rcs, ",")+`]}`)))
	if !got[0].ValuesOmitted || got[0].After != nil {
		t.Errorf("a value above %d bytes is kept: %+v", message.MaxPlanValueBytes, got[0].Address)
	}
	total, omitted := 0, 0
	for _, c := range got[1:] {
		if c.ValuesOmitted {
			omitted++
		}
		total += jsonSize(c.After)
	}
	if total > message.MaxPlanValuesBytes || omitted == 0 || omitted == len(got)-1 {
		t.Errorf("values kept: %d bytes (limit %d), %d of %d resources without values", total, message.MaxPlanValuesBytes, omitted, len(got)-1)
	}
}
