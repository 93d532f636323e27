package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/terraform"
)

// With no parameter store (params backend none, which karma serve accepts) GET /components
// answers the component without a runtime, as api.Config.Params documents for a server without
// one: the App's Params gave the API an error reading "parameter store of prod: <nil>", a 503
// "try again" that no retry could end.
func TestAPIComponentWithoutParameterStore(t *testing.T) {
	o := examples(t)
	cfg := config.Defaults()
	cfg.Repo, cfg.StateDir, cfg.Params = o.Work, t.TempDir(), "none"
	a := app.New(cfg, app.Options{Terraform: &terraform.Noop{}})
	defer a.Close()
	h, _, err := a.API(context.Background(), app.APIOptions{Auth: api.InsecureLocal{User: "ada"}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/components/prod/vpc/core", nil)
	req.Host = "localhost"
	h.ServeHTTP(rec, req)
	var v struct {
		ID      string          `json:"id"`
		Runtime json.RawMessage `json:"runtime"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &v) != nil || v.ID != "prod/vpc/core" || string(v.Runtime) != "null" {
		t.Errorf("GET /components/prod/vpc/core without a parameter store: %d %s; want 200 with runtime null", rec.Code, rec.Body)
	}
}
