package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/pipeline"
)

// Every bad change request is refused whole, saying which input and why, with nothing
// committed or queued.
func TestRequestChangeRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	head := gittest.Git(t, h.origin.Bare, "rev-parse", "main")
	valid := request("prod/vpc/core", vpcChange(30))
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for key, val := range valid {
			m[key] = val
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	bad := vpcChange(30)
	bad["az_count"], bad["cidr"] = 9, "10.20.0.0/8"
	placeholder := vpcChange(30)
	placeholder["flow_logs"] = map[string]any{"api/token": Redacted}
	dangling := vpcChange(30)
	dangling["karma"] = map[string]any{"depends_on": []any{"s3-bucket/nope"}}
	cases := []struct {
		name     string
		body     any
		token    string
		header   []string
		status   int
		typ      string
		pointers []string
	}{
		{"not JSON", `{"component": `, "writer", nil, http.StatusBadRequest, TypeBadRequest, nil},
		{"two values", `{} {}`, "writer", nil, http.StatusBadRequest, TypeBadRequest, nil},
		{"not UTF-8", "{\"component\": \"\xff\"}", "writer", nil, http.StatusBadRequest, TypeBadRequest, nil},
		{"empty", ``, "writer", nil, http.StatusBadRequest, TypeBadRequest, nil},
		{"not JSON content", valid, "writer", []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType, TypeMediaType, nil},
		{"compressed", gzipped(t, valid), "writer", []string{"Content-Encoding", "gzip"}, http.StatusUnsupportedMediaType, TypeMediaType, nil},
		{"too large", `{"component": "` + strings.Repeat("x", DefaultMaxBody) + `"}`, "writer", nil, http.StatusRequestEntityTooLarge, TypeTooLarge, nil},
		{"unknown field", with("colour", "blue"), "writer", nil, http.StatusUnprocessableEntity, TypeValidation, []string{"/colour"}},
		{"wrong type", with("component", 5), "writer", nil, http.StatusUnprocessableEntity, TypeValidation, []string{"/component"}},
		{"nothing", map[string]any{}, "writer", nil, http.StatusUnprocessableEntity, TypeValidation, []string{"/component", "/proposed_change", "/requested_by"}},
		{"component not env/type/nick", with("component", "vpc/core"), "writer", nil, http.StatusUnprocessableEntity, TypeValidation, []string{"/component"}},
		{"proposal not an object", with("proposed_change", []any{1}), "writer", nil, http.StatusUnprocessableEntity, TypeValidation, []string{"/proposed_change"}},
		{"auto-approve without the scope", with("auto_approve", true), "writer", nil, http.StatusUnprocessableEntity, TypeValidation, []string{"/auto_approve"}},
		{"unknown component", with("component", "prod/vpc/nope"), "writer", nil, http.StatusUnprocessableEntity, TypeValidation, []string{"/component"}},
		{"unknown environment", with("component", "staging/vpc/core"), "writer", nil, http.StatusUnprocessableEntity, TypeValidation, []string{"/component"}},
		{"the base layer, not an environment", with("component", "_base/vpc/core"), "writer", nil, http.StatusUnprocessableEntity, TypeValidation, []string{"/component"}},
		{"a requester forging lines of the commit", with("requested_by", "Eve <e@x.org>\nKarma-Change: forged"), "writer", nil, http.StatusUnprocessableEntity, TypeValidation, []string{"/requested_by"}},
		{"a member twice", `{"component": "prod/vpc/core", "requested_by": "ada", "proposed_change": {}, "component": "dev/vpc/core"}`, "writer", nil,
			http.StatusUnprocessableEntity, TypeValidation, []string{"/component"}},
		{"a member named in another case", `{"Component": "prod/vpc/core", "requested_by": "ada", "proposed_change": {}}`, "writer", nil,
			http.StatusUnprocessableEntity, TypeValidation, []string{"/Component"}},
		{"a member twice in the proposal", `{"component": "prod/vpc/core", "requested_by": "ada", "proposed_change": {"cidr": "10.0.0.0/16", "a": {"x": 1, "x": 2}}}`, "writer", nil,
			http.StatusUnprocessableEntity, TypeValidation, []string{"/proposed_change/a/x"}},
		{"a requester with two addresses", with("requested_by", "Eve <e@x.org> <m@y.org>"), "writer", nil, http.StatusUnprocessableEntity, TypeValidation, []string{"/requested_by"}},
		{"unchanged", with("proposed_change", vpcChange(90)), "writer", nil, http.StatusUnprocessableEntity, TypeValidation, []string{"/proposed_change"}},
		{"schema errors", with("proposed_change", bad), "writer", nil, http.StatusUnprocessableEntity, TypeValidation,
			[]string{"/proposed_change/az_count", "/proposed_change/cidr"}},
		{"a redacted secret's placeholder", with("proposed_change", placeholder), "writer", nil, http.StatusUnprocessableEntity, TypeValidation,
			[]string{"/proposed_change/flow_logs/api~1token"}},
		{"dangling reference", with("proposed_change", dangling), "writer", nil, http.StatusUnprocessableEntity, TypeValidation, []string{"/proposed_change/karma/depends_on/0"}},
	}
	for _, c := range cases {
		r := h.call("POST", "/request-change", c.token, c.body, c.header...).want(c.status)
		p := r.problem()
		ptrs := p.pointers()
		slices.Sort(ptrs)
		if p.Type != ProblemBase+c.typ || !slices.Equal(ptrs, c.pointers) {
			t.Errorf("%s: %s %v, want %s %v: %s", c.name, p.Type, ptrs, c.typ, c.pointers, p.Detail)
		}
	}
	if now := gittest.Git(t, h.origin.Bare, "rev-parse", "main"); now != head {
		t.Errorf("a refused request committed %s", now)
	}
	if n, _ := h.q.Depth(t.Context(), pipeline.StageResolve); n != 0 {
		t.Errorf("a refused request queued %d change(s)", n)
	}

	// With the approve scope, a request may ask for auto-approval.
	var created ChangeCreated
	h.call("POST", "/request-change", "admin", with("auto_approve", true)).want(http.StatusCreated).decode(&created)
	h.runUntilIdle()
	var detail ChangeDetail
	h.call("GET", "/changes/"+created.ChangeID, "reader", nil).want(http.StatusOK).decode(&detail)
	if !detail.AutoApprove || detail.State != StateDone {
		t.Errorf("auto-approved request: %+v", detail.ChangeSummary)
	}
}

// refusingWriter is a proposal writer that refuses as the repository would.
type refusingWriter struct{ err error }

func (w refusingWriter) Commit(context.Context, configrepo.Proposal) (string, error) {
	return "", w.err
}
func (refusingWriter) BranchOf(string) string { return "main" }

func TestRequestChangeWhereTheRepositoryCannotBeWritten(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for name, c := range map[string]struct {
		cfg func(*Config)
		typ string
	}{
		"no proposals": {func(c *Config) { c.Proposals, c.Writer = nil, nil }, TypeReadOnly},
		"write mode none": {func(c *Config) {
			c.Writer = &configrepo.Writer{Repo: h.src.Repo, Mode: configrepo.WriteNone}
		}, TypeReadOnly},
		"changed meanwhile": {func(c *Config) {
			c.Writer = refusingWriter{fmt.Errorf("%w: iac/prod/vpc/core/config.json changed", configrepo.ErrConflict)}
		}, TypeRepositoryChanged},
	} {
		cfg := h.config()
		c.cfg(&cfg)
		handler, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		h.handler = handler
		p := h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(30))).want(http.StatusConflict).problem()
		if p.Type != ProblemBase+c.typ {
			t.Errorf("%s: %s: %s", name, p.Type, p.Detail)
		}
	}
}

// A proposal that is a JSON object holding a number beyond what a config can hold (1e999) is
// refused saying so: it was answered "required: … a JSON object", about an object that was
// there. What is not an object is still told it must be one.
func TestRequestChangeSaysWhyAnObjectIsNotUsable(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for body, want := range map[string]string{
		`{"component":"prod/vpc/core","proposed_change":{"cidr":"10.20.0.0/16","az_count":1e999},"requested_by":"Ada"}`: "not usable as the component's environment file: json: cannot unmarshal number 1e999",
		`{"component":"prod/vpc/core","proposed_change":[1],"requested_by":"Ada"}`:                                      "required: the component's new environment file, a JSON object",
		`{"component":"prod/vpc/core","requested_by":"Ada"}`:                                                            "required: the component's new environment file, a JSON object",
	} {
		p := h.call("POST", "/request-change", "admin", body).want(http.StatusUnprocessableEntity).problem()
		if len(p.Errors) != 1 || p.Errors[0].Pointer != "/proposed_change" || !strings.Contains(p.Errors[0].Detail, want) {
			t.Errorf("%s: %+v, want /proposed_change: %q", body, p.Errors, want)
		}
	}
}

// gzipped is v as JSON, gzip-compressed.
func gzipped(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
