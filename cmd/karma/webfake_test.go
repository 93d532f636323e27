package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/usekarma/karma/shared/web"
)

// The web page in Chromium against canned API answers: what it shows of answers the example
// repository does not easily produce (a retry, a rollback, a deployment with two upstreams, an
// approval that needs another). Only the API is canned: the page is the embedded bundle.

// fakeAPI answers "METHOD /path?query" (as sent), else "METHOD /path" (the path without its
// query), with a status and a JSON body; anything else is a 404 problem document. posts records
// the POSTs it was sent, gets the GETs (path and query).
type fakeAPI struct {
	mu      sync.Mutex
	answers map[string]fakeAnswer
	posts   []string
	gets    []*url.URL
	once    map[string]fakeAnswer // answered once, before answers
	held    map[string]*heldAnswer
}

// heldAnswer keeps a route's requests waiting: arrived is sent each request, which is answered
// when release is closed.
type heldAnswer struct {
	arrived chan struct{}
	release chan struct{}
}

// hold makes route's requests wait until release is closed; each one arriving is sent on arrived.
func (f *fakeAPI) hold(route string) *heldAnswer {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held == nil {
		f.held = map[string]*heldAnswer{}
	}
	h := &heldAnswer{arrived: make(chan struct{}, 16), release: make(chan struct{})}
	f.held[route] = h
	return h
}

// cutConnection as an answer's status closes the connection without an answer.
const cutConnection = -1

type fakeAnswer struct {
	status int
	body   string
}

func (f *fakeAPI) set(route string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[route] = fakeAnswer{status, body}
}

// setOnce answers route's next request so; the ones after get what set gave.
func (f *fakeAPI) setOnce(route string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.once == nil {
		f.once = map[string]fakeAnswer{}
	}
	f.once[route] = fakeAnswer{status, body}
}

// servePage starts the page and the fake API on a loopback address.
func servePage(t *testing.T) (*fakeAPI, string) {
	t.Helper()
	f := &fakeAPI{answers: map[string]fakeAnswer{
		"GET /me":    {200, `{"kind":"api","name":"ada","scopes":["read","write","approve"]}`},
		"GET /graph": {200, `{"format":"karma.graph.v1","components":[],"edges":[],"waves":[]}`},
		"GET /log":   {200, `{"records":[]}`},
	}}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", web.Handler())
	mux.Handle("GET /ui/", web.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		if h := f.held[r.Method+" "+r.URL.EscapedPath()]; h != nil {
			f.mu.Unlock()
			h.arrived <- struct{}{}
			<-h.release
			f.mu.Lock()
		}
		a, ok := f.once[r.Method+" "+r.URL.EscapedPath()]
		delete(f.once, r.Method+" "+r.URL.EscapedPath())
		if !ok {
			a, ok = f.answers[r.Method+" "+r.URL.RequestURI()]
		}
		if !ok {
			a, ok = f.answers[r.Method+" "+r.URL.EscapedPath()]
		}
		switch r.Method {
		case "POST":
			f.posts = append(f.posts, r.URL.EscapedPath())
		case "GET":
			u := *r.URL
			f.gets = append(f.gets, &u)
		}
		f.mu.Unlock()
		if !ok {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(404)
			w.Write([]byte(`{"title":"Not Found","status":404,"detail":"no such thing"}`))
			return
		}
		if a.status == cutConnection {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if a.status >= 400 {
			w.Header().Set("Content-Type", "application/problem+json")
		}
		w.WriteHeader(a.status)
		w.Write([]byte(a.body))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// A deployment's lineage says how each step caused the one it leads to, naming it: a
// deployment with two upstreams (the second one's keys did not reach the first one's root),
// one redeployed on any apply, a retry of a failed deployment, a rollback and what it rolled
// back from — as karma lineage says it, never "its changed keys none reached the step above".
func TestWebPageLineageSaysHowEachStepCausedTheNext(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	change := `{"id":"cs-1","env":"prod","correlation_id":"corr-1","source":"request","root_causes":[{"kind":"request","id":"req-1"}],
		"actor":{"kind":"api","name":"ada"},"at":"2026-01-02T03:04:05Z","affected":[]}`
	root := `[{"cause":{"kind":"request","id":"req-1"},"change":` + change + `}]`
	dep := func(id, comp, status string, causes string) string {
		return `{"id":"` + id + `","change_set_id":"cs-1","env":"prod","component":"` + comp + `","wave":1,"caused_by":` + causes +
			`,"status":"` + status + `","at":"2026-01-02T03:04:05Z","actor":{"kind":"api","name":"bob"}}`
	}
	f.set("GET /deployments/dep-svc/lineage", 200, `{"deployment":`+dep("dep-svc", "prod/ecs-service/api", "applied", `[]`)+`,"causes":[
		{"cause":{"kind":"deployment","id":"dep-vpc","keys":["private_subnet_ids"]},"upstream":{"deployment":`+dep("dep-vpc", "prod/vpc/core", "applied", `[]`)+`,"causes":`+root+`}},
		{"cause":{"kind":"deployment","id":"dep-cluster","keys":[],"trigger":"on-any-apply"},"upstream":{"deployment":`+dep("dep-cluster", "prod/ecs-cluster/core", "applied", `[]`)+`,"causes":`+root+`}}]}`)
	f.set("GET /deployments/dep-retry/lineage", 200, `{"deployment":`+dep("dep-retry", "prod/vpc/core", "applied", `[]`)+`,"causes":[
		{"cause":{"kind":"retry","id":"dep-failed"},"upstream":{"deployment":`+dep("dep-failed", "prod/vpc/core", "failed", `[]`)+`,"causes":`+root+`}}]}`)
	f.set("GET /deployments/dep-back/lineage", 200, `{"deployment":`+dep("dep-back", "prod/vpc/core", "applied", `[]`)+`,"causes":[
		{"cause":{"kind":"rollback","id":"dep-old"},"upstream":{"deployment":`+dep("dep-old", "prod/vpc/core", "applied", `[]`)+`,"causes":`+root+`},
		 "replaces":`+dep("dep-new", "prod/vpc/core", "applied", `[]`)+`}]}`)

	p := openBrowser(t, base)
	p.do("opening the page", time.Minute, chromedp.Navigate(base+"/"))
	p.waitJS("the page ready", `document.body.dataset.ready === 'true'`, time.Minute)
	via := func(dep string) string {
		p.t.Helper()
		return eval[string](p, `document.querySelector('#lineage li[data-id="`+dep+`"] .via')?.textContent ?? 'no via line'`)
	}
	open := func(dep string) {
		p.t.Helper()
		p.do("the lineage of "+dep, 20*time.Second, chromedp.Evaluate[chromedp.Void](`location.hash = '#/deployments/`+dep+`'`))
		p.waitJS("the timeline of "+dep, `!!document.querySelector('#lineage li[data-id="`+dep+`"]')`, 20*time.Second)
	}

	open("dep-svc")
	if got := via("dep-vpc"); !strings.Contains(got, "private_subnet_ids reached prod/ecs-service/api") {
		t.Errorf("the first upstream: %q", got)
	}
	if got := via("dep-cluster"); !strings.Contains(got, "prod/ecs-service/api") || !strings.Contains(got, "on any apply") || strings.Contains(got, "none") {
		t.Errorf("the upstream redeploying on any apply: %q", got)
	}
	open("dep-retry")
	if got := via("dep-failed"); !strings.Contains(got, "retry") || !strings.Contains(got, "bob") || strings.Contains(got, "keys") {
		t.Errorf("the retried deployment: %q", got)
	}
	open("dep-back")
	if got := via("dep-old"); !strings.Contains(got, "rolled back") || !strings.Contains(got, "dep-new") || strings.Contains(got, "keys") {
		t.Errorf("the deployment rolled back to: %q", got)
	}
	p.screenshot("lineage-causes")
	p.noProblems()
}

// An approval in an environment needing two is not the change approved: the page says how
// many more are needed and shows the approvals so far, never "Approved." of a change that
// still waits.
func TestWebPageSaysAnApprovalThatNeedsAnother(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	change := func(approvals string) string {
		return `{"id":"cs-2","env":"prod","state":"awaiting-approval","source":"git","actor":{"kind":"git","name":"carol"},"created_at":"2026-01-02T03:04:05Z",
			"root_causes":[{"kind":"commit","id":"abc"}],"roots":["prod/vpc/core"],"auto_approve":false,"approved":false,"counts":{"planned":1},
			"protected":true,"approvals_required":2,"approvals":` + approvals + `,"expires_at":"2026-01-09T03:04:05Z",
			"waves":[["prod/vpc/core"]],"deployments":[{"component":"prod/vpc/core","deployment_id":"dep-1","wave":0,"state":"planned"}],"plans":[]}`
	}
	f.set("GET /changes/cs-2", 200, change(`[]`))
	p := openBrowser(t, base)
	p.do("opening the change", time.Minute, chromedp.Navigate(base+"/#/changes/cs-2"))
	p.waitJS("the change", `document.querySelector('#change-state')?.textContent === 'awaiting-approval'`, time.Minute)
	if got := p.text("#change-approvals"); !strings.Contains(got, "approvals 0 of 2") {
		t.Errorf("the approvals before: %q", got)
	}
	f.set("POST /changes/cs-2/approve", 200, `{"change":`+change(`[{"by":"ada","person":"ada","at":"2026-01-02T04:00:00Z"}]`)+`,"released":0,"pending":1}`)
	f.set("GET /changes/cs-2", 200, change(`[{"by":"ada","person":"ada","at":"2026-01-02T04:00:00Z"}]`))
	p.do("approving", 20*time.Second, chromedp.Click(chromedp.CSS("#approve")))
	p.waitJS("the approvals after", `document.querySelector('#change-approvals')?.textContent.includes('1 of 2')`, 20*time.Second)
	if got := p.text("#decision-result"); !strings.Contains(got, "1 more needed") || strings.Contains(got, "Approved") {
		t.Errorf("the answer to the approval: %q", got)
	}
	if got := p.text("#change-approvals"); !strings.Contains(got, "(ada)") {
		t.Errorf("the approvals after: %q", got)
	}
	p.screenshot("approval-pending")
	p.noProblems()
}

// An API call that gets no answer (the server down, the connection cut) or a refusal reaches
// the person: a view shows why instead of "Loading…" for ever, and a change whose refresh
// fails says that what it shows is as of its last reading instead of silently going stale.
func TestWebPageShowsWhatTheAPIDidNotAnswer(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	f.set("GET /changes", cutConnection, "")
	p := openBrowser(t, base)
	p.do("opening the changes", time.Minute, chromedp.Navigate(base+"/#/changes"))
	p.waitJS("the page ready", `document.body.dataset.ready === 'true'`, time.Minute)
	p.waitJS("the missing answer shown", `document.querySelector('#panel .error')?.textContent.includes('did not answer GET /changes')`, 20*time.Second)

	change := `{"id":"cs-3","env":"prod","state":"awaiting-approval","source":"git","actor":{"kind":"git","name":"carol"},"created_at":"2026-01-02T03:04:05Z",
		"root_causes":[{"kind":"commit","id":"abc"}],"roots":["prod/vpc/core"],"auto_approve":false,"approved":false,"counts":{"planned":1},"approvals_required":1,
		"waves":[["prod/vpc/core"]],"deployments":[{"component":"prod/vpc/core","deployment_id":"dep-1","wave":0,"state":"planned"}],"plans":[]}`
	f.set("GET /changes/cs-3", 200, change)
	p.do("opening the change", 20*time.Second, chromedp.Evaluate[chromedp.Void](`location.hash = '#/changes/cs-3'`))
	p.waitJS("the change", `document.querySelector('#change-state')?.textContent === 'awaiting-approval'`, 20*time.Second)
	f.set("POST /changes/cs-3/approve", 200, `{"change":`+change+`,"released":1,"pending":0}`)
	f.set("GET /changes/cs-3", 503, `{"title":"Service Unavailable","status":503,"detail":"the change sets store is unavailable"}`)
	p.do("approving", 20*time.Second, chromedp.Click(chromedp.CSS("#approve")))
	p.waitJS("the stale change labelled", `document.querySelector('#change-stale')?.textContent.includes('the change sets store is unavailable')`, 20*time.Second)
	if got := p.text("#change-stale"); !strings.Contains(got, "as of") {
		t.Errorf("the stale notice: %q", got)
	}
	p.screenshot("stale-change")
	p.noProblems()
}

// The graph colours a change's components by their deployment's state, and only by it: one
// blocked because an upstream failed is not shown as skipped (nothing to do), nor a plan held
// for review as under way.
func TestWebPageStatesOnTheGraph(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	ids := []string{"prod/vpc/core", "prod/ecs-cluster/core", "prod/ecs-service/api", "prod/lambda/handlers", "prod/s3-bucket/assets", "prod/route53-zone/main"}
	var comps []string
	for _, id := range ids {
		parts := strings.Split(id, "/")
		comps = append(comps, `{"id":"`+id+`","env":"prod","type":"`+parts[1]+`","nickname":"`+parts[2]+`","runtime_status":"present"}`)
	}
	f.set("GET /graph", 200, `{"format":"karma.graph.v1","components":[`+strings.Join(comps, ",")+`],"edges":[],"waves":[["`+strings.Join(ids, `","`)+`"]]}`)
	states := map[string]string{"prod/vpc/core": "failed", "prod/ecs-cluster/core": "blocked", "prod/ecs-service/api": "planned",
		"prod/lambda/handlers": "skipped", "prod/s3-bucket/assets": "applied", "prod/route53-zone/main": "scheduled"}
	var deps []string
	for i, id := range ids {
		deps = append(deps, `{"component":"`+id+`","deployment_id":"dep-`+strings.Repeat("a", i+1)+`","wave":0,"state":"`+states[id]+`"}`)
	}
	f.set("GET /changes/cs-4", 200, `{"id":"cs-4","env":"prod","state":"in-progress","source":"git","actor":{"kind":"git","name":"carol"},"created_at":"2026-01-02T03:04:05Z",
		"root_causes":[{"kind":"commit","id":"abc"}],"roots":["prod/vpc/core"],"auto_approve":false,"approved":true,"counts":{},"approvals_required":1,
		"waves":[["`+strings.Join(ids, `","`)+`"]],"deployments":[`+strings.Join(deps, ",")+`],"plans":[]}`)
	p := openBrowser(t, base)
	p.do("opening the change", time.Minute, chromedp.Navigate(base+"/#/changes/cs-4"))
	p.waitJS("the change", `document.querySelector('#change-state')?.textContent === 'in-progress'`, time.Minute)
	want := map[string]string{"failed": "st-failed", "blocked": "st-blocked", "planned": "st-held", "skipped": "st-skipped", "applied": "st-applied", "scheduled": "st-busy"}
	for _, id := range ids {
		got := eval[[]string](p, `karmaGraph.classes('`+id+`')`)
		if len(got) != 1 || got[0] != want[states[id]] {
			t.Errorf("%s (%s) on the graph: %v, want %s", id, states[id], got, want[states[id]])
		}
	}
	p.screenshot("states")
	p.noProblems()
}

// Events missed while the stream was down (the server restarted: its event ids start again, or
// it kept fewer than were missed) do not leave a change's page on its old state: each time the
// stream comes back, the change is read again.
func TestWebPageStatesReadAgainAfterTheEventsDropped(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	f.set("GET /events", 200, ": karma events\nretry: 2000\n\n") // and closed: the page reconnects
	change := func(state, dep string) string {
		return `{"id":"cs-5","env":"prod","state":"` + state + `","source":"git","actor":{"kind":"git","name":"carol"},"created_at":"2026-01-02T03:04:05Z",
			"root_causes":[{"kind":"commit","id":"abc"}],"roots":["prod/vpc/core"],"auto_approve":true,"approved":true,"counts":{},"approvals_required":1,
			"waves":[["prod/vpc/core"]],"deployments":[{"component":"prod/vpc/core","deployment_id":"dep-1","wave":0,"state":"` + dep + `"}],"plans":[]}`
	}
	f.set("GET /changes/cs-5", 200, change("in-progress", "scheduled"))
	p := openBrowser(t, base)
	p.do("opening the change", time.Minute, chromedp.Navigate(base+"/#/changes/cs-5"))
	p.waitJS("the change", `document.querySelector('#change-state')?.textContent === 'in-progress'`, time.Minute)
	f.set("GET /changes/cs-5", 200, change("done", "applied"))
	p.waitJS("the change read again", `document.querySelector('#change-state')?.textContent === 'done'`, 20*time.Second)
	p.noProblems()
}

// The graph's colours are its runtimes as read: read again when deployments apply (or the
// event stream comes back), so a component deployed since the page opened is not left shown as
// missing; the status line says when it was read, and that the repository changed when the
// drawn graph is no longer the repository's.
func TestWebPageStatesTheGraphAsOfItsReading(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	graph := func(status string, extra string) string {
		return `{"format":"karma.graph.v1","components":[{"id":"prod/vpc/core","env":"prod","type":"vpc","nickname":"core","runtime_status":"` + status + `"}` +
			extra + `],"edges":[],"waves":[["prod/vpc/core"]]}`
	}
	f.set("GET /graph", 200, graph("missing", ""))
	f.set("GET /events", 200, ": karma events\nretry: 2000\n\n") // and closed: the page reconnects
	p := openBrowser(t, base)
	p.do("opening the page", time.Minute, chromedp.Navigate(base+"/"))
	p.waitJS("the page ready", `document.body.dataset.ready === 'true'`, time.Minute)
	if got := eval[string](p, `karmaGraph.status('prod/vpc/core')`); got != "missing" {
		t.Fatalf("prod/vpc/core drawn as %q", got)
	}
	if got := p.text("#graph-status"); !strings.Contains(got, "as of") {
		t.Errorf("the graph's status line: %q", got)
	}
	f.set("GET /graph", 200, graph("present", ""))
	p.waitJS("the runtime read again", `karmaGraph.status('prod/vpc/core') === 'present'`, 20*time.Second)
	f.set("GET /graph", 200, graph("present", `,{"id":"prod/vpc/edge","env":"prod","type":"vpc","nickname":"edge","runtime_status":"missing"}`))
	p.waitJS("the repository changed", `document.querySelector('#graph-status').textContent.includes('the repository changed since')`, 20*time.Second)
	p.noProblems()
}

// requested is the query of the last GET of path the page sent (nil for none).
func (f *fakeAPI) requested(path string) url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.gets) - 1; i >= 0; i-- {
		if f.gets[i].Path == path {
			return f.gets[i].Query()
		}
	}
	return nil
}

// The audit log's filters reach GET /log as typed: a time with its offset's '+' (made a space,
// so refused as no RFC 3339 time) and an actor holding '&' (cut in two) were mangled by the
// page decoding its route's query twice.
func TestWebPageFiltersTheLogAsTyped(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	p := openBrowser(t, base)
	p.do("opening the audit log", time.Minute, chromedp.Navigate(base+"/#/log"))
	p.waitJS("the audit log", `!!document.querySelector('#audit-log')`, time.Minute)
	since, actor := "2026-01-01T00:00:00+02:00", "ci&deploy=1 two"
	p.do("filtering", 20*time.Second, chromedp.Evaluate[chromedp.Void](`(() => {
		document.querySelector('#audit-log').dataset.old = 'yes';
		const form = document.querySelector('form.filters');
		form.elements.since.value = `+strconv.Quote(since)+`;
		form.elements.actor.value = `+strconv.Quote(actor)+`;
		form.requestSubmit();
	})()`))
	p.waitJS("the filtered log", `document.querySelector('#audit-log') && !document.querySelector('#audit-log').dataset.old`, 20*time.Second)
	q := f.requested("/log")
	if q.Get("since") != since || q.Get("actor") != actor || len(q["deployment"]) != 0 {
		t.Errorf("GET /log?%s, want since %q and actor %q", q.Encode(), since, actor)
	}
	if got := eval[string](p, `document.querySelector('form.filters').elements.since.value`); got != since {
		t.Errorf("the since filter shown as %q, want %q", got, since)
	}
	p.noProblems()
}

// A change's page shows what GET /changes/{id} says of it beside its state: the audit records
// it could not read (a plan they hold may be missing: the page said "No plan yet."), the change
// set that superseded it, those it is queued behind, when it expired unapproved.
func TestWebPageShowsWhatHoldsAChange(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	f.set("GET /changes/cs-6", 200, `{"id":"cs-6","env":"prod","state":"superseded","source":"git","actor":{"kind":"git","name":"carol"},"created_at":"2026-01-02T03:04:05Z",
		"root_causes":[{"kind":"commit","id":"abc"}],"roots":["prod/vpc/core"],"auto_approve":false,"approved":false,"counts":{"skipped":1},"approvals_required":1,
		"superseded_by":"cs-9","queued_behind":["cs-4"],"expired_at":"2026-01-03T03:04:05Z",
		"waves":[["prod/vpc/core"]],"deployments":[{"component":"prod/vpc/core","deployment_id":"dep-1","wave":0,"state":"skipped","reason":"superseded"}],"plans":[],
		"unreadable_records":[{"message_id":"msg-7","type":"deployment.planned","chain":"prod","seq":42,"deployment_id":"dep-1","error":"message: not an envelope"}]}`)
	p := openBrowser(t, base)
	p.do("opening the change", time.Minute, chromedp.Navigate(base+"/#/changes/cs-6"))
	p.waitJS("the change", `document.querySelector('#change-state')?.textContent === 'superseded'`, time.Minute)
	if got := eval[string](p, `document.querySelector('#change-unreadable')?.textContent ?? 'not shown'`); !strings.Contains(got, "msg-7") ||
		!strings.Contains(got, "not an envelope") || !strings.Contains(got, "prod #42") || !strings.Contains(got, "dep-1") {
		t.Errorf("the unreadable record: %q", got)
	}
	if got := p.text("#panel"); strings.Contains(got, "No plan yet") {
		t.Errorf("the page says there is no plan yet though a plan's record could not be read: %q", got)
	}
	got := eval[string](p, `document.querySelector('#change-why')?.textContent ?? 'not shown'`)
	for _, want := range []string{"superseded by cs-9", "queued behind cs-4", "expired unapproved at 2026-01-03 03:04:05Z"} {
		if !strings.Contains(got, want) {
			t.Errorf("what holds the change: %q, want %q", got, want)
		}
	}
	p.screenshot("change-held")
	p.noProblems()
}

// A held promotion's page says why it was held and which change set tries it again (GET
// /changes/{id}'s held and held_retried_as): the state alone, "held", said neither.
func TestWebPageShowsAHeldPromotion(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	f.set("GET /changes/cs-7", 200, `{"id":"cs-7","env":"prod","state":"held","source":"promotion","actor":{"kind":"system","name":"karma"},"created_at":"2026-01-02T03:04:05Z",
		"root_causes":[],"roots":[],"auto_approve":false,"approved":false,"counts":{},"approvals_required":1,
		"held":"prod deployed commit def holding iac/base/vpc/core.json, not yet through dev","held_retried_as":"cs-7@2",
		"waves":[],"deployments":[],"plans":[]}`)
	p := openBrowser(t, base)
	p.do("opening the change", time.Minute, chromedp.Navigate(base+"/#/changes/cs-7"))
	p.waitJS("the change", `document.querySelector('#change-state')?.textContent === 'held'`, time.Minute)
	got := eval[string](p, `document.querySelector('#change-why')?.textContent ?? 'not shown'`)
	for _, want := range []string{"held: prod deployed commit def holding iac/base/vpc/core.json, not yet through dev", "tried again as cs-7@2"} {
		if !strings.Contains(got, want) {
			t.Errorf("why the promotion is held: %q, want %q", got, want)
		}
	}
	if href := eval[string](p, `[...document.querySelectorAll('#change-why a')].map((a) => a.getAttribute('href')).join(' ')`); !strings.Contains(href, "cs-7%402") {
		t.Errorf("the retry's link: %q, want one to cs-7@2", href)
	}
	p.noProblems()
}

// The audit log's last page links to what is recorded after it (GET /log's resume_cursor): a
// reader coming back follows it and sees records recorded since, even of earlier times.
func TestWebPageAuditLogResumes(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	f.set("GET /log", 200, `{"records":[{"chain":"prod","seq":1,"message_id":"m-1","type":"change.detected","occurred_at":"2026-01-02T03:04:05Z",
		"actor_kind":"git","actor":"carol","hash":"abcdef0123456789","body":{}}],"resume_cursor":"R-1"}`)
	p := openBrowser(t, base)
	p.do("opening the audit log", time.Minute, chromedp.Navigate(base+"/#/log?actor=carol"))
	p.waitJS("the resume link", `!!document.querySelector('#log-resume a')`, time.Minute)
	href := eval[string](p, `document.querySelector('#log-resume a').getAttribute('href')`)
	if !strings.Contains(href, "cursor=R-1") || !strings.Contains(href, "actor=carol") {
		t.Errorf("the link to what is recorded since: %q, want the filters and cursor R-1", href)
	}
	p.noProblems()
}

// The changes list is GET /changes a page at a time: with more change sets than a page holds,
// the page says that older ones exist and opens them (it showed the 50 newest as if they were
// all).
func TestWebPageSaysOlderChangesExist(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	summary := func(id string) string {
		return `{"id":"` + id + `","env":"prod","state":"done","source":"git","actor":{"kind":"git","name":"carol"},"created_at":"2026-01-02T03:04:05Z",
			"root_causes":[{"kind":"commit","id":"abc"}],"roots":["prod/vpc/core"],"auto_approve":true,"approved":true,"counts":{"applied":1},"approvals_required":1}`
	}
	f.set("GET /changes?limit=50", 200, `{"changes":[`+summary("cs-new")+`],"next_cursor":"cs-new"}`)
	f.set("GET /changes?limit=50&cursor=cs-new", 200, `{"changes":[`+summary("cs-old")+`]}`)
	p := openBrowser(t, base)
	p.do("opening the changes", time.Minute, chromedp.Navigate(base+"/#/changes"))
	p.waitJS("the changes", `document.querySelector('#panel table')?.textContent.includes('cs-new')`, time.Minute)
	if got := eval[string](p, `document.querySelector('#changes-pages')?.textContent ?? 'nothing said'`); !strings.Contains(got, "older changes exist") {
		t.Errorf("the first page says %q of older changes", got)
	}
	p.do("the older changes", 20*time.Second, chromedp.Click(chromedp.CSS(`#changes-pages a[href*="cursor"]`)))
	p.waitJS("the older changes", `document.querySelector('#changes')?.textContent.includes('cs-old')`, 20*time.Second)
	if got := p.text("#changes"); strings.Contains(got, "cs-new") {
		t.Errorf("the second page: %q", got)
	}
	if got := p.text("#changes-pages"); strings.Contains(got, "exist") || !strings.Contains(got, "Newest changes") {
		t.Errorf("the last page says %q", got)
	}
	p.noProblems()
}

// A component's history is its latest deployments: with more than it shows, the page says
// older ones exist and where they are listed (it said "History (20)" of a component deployed
// 21 times and more).
func TestWebPageSaysOlderDeploymentsExist(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	var deps []string
	for i := 0; i < 100; i++ { // as many as GET /components/… gives at most: the page asks for fewer
		deps = append(deps, fmt.Sprintf(`{"id":"dep-%016d","change_set_id":"cs-1","env":"prod","component":"prod/vpc/core","wave":0,"caused_by":[],"status":"applied","at":"2026-01-02T03:04:05Z","actor":{"kind":"git","name":"carol"}}`, i))
	}
	view := func(n int) string {
		return `{"id":"prod/vpc/core","env":"prod","type":"vpc","nickname":"core","runtime_status":"present","config":{},"runtime":null,
			"dependencies":[],"dependents":[],"diagnostics":[],"source":null,"deployments":[` + strings.Join(deps[:n], ",") + `]}`
	}
	for n := 0; n <= 100; n++ {
		f.set(fmt.Sprintf("GET /components/prod/vpc/core?deployments=%d", n), 200, view(n))
	}
	p := openBrowser(t, base)
	p.do("opening the history", time.Minute, chromedp.Navigate(base+"/#/c/prod/vpc/core/history"))
	p.waitJS("the history", `!!document.querySelector('#panel table')`, time.Minute)
	shown := eval[int](p, `document.querySelectorAll('#panel table tbody tr').length`)
	tab := p.text("#tab-history")
	older := eval[string](p, `document.querySelector('#history-older')?.textContent ?? 'nothing said'`)
	if !strings.Contains(older, "older ones exist") || !strings.Contains(tab, fmt.Sprintf("(%d+)", shown)) {
		t.Errorf("%d deployments shown as %q, the page says %q of older ones", shown, tab, older)
	}
	if href := eval[string](p, `document.querySelector('#history-older a')?.getAttribute('href') ?? ''`); href != "#/log?component=prod%2Fvpc%2Fcore" {
		t.Errorf("older deployments link to %q", href)
	}
	p.noProblems()
}

// A lineage read is shown even when the audit log cannot say who requested its root change:
// that search failing (the audit store unavailable) replaced the whole timeline with its error.
func TestWebPageShowsTheLineageWhenTheRequesterCannotBeRead(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	f.set("GET /deployments/dep-1/lineage", 200, `{"deployment":{"id":"dep-1","change_set_id":"cs-1","env":"prod","component":"prod/vpc/core","wave":0,
		"caused_by":[],"status":"failed","detail":"terraform apply: exit 1","at":"2026-01-02T03:04:05Z","actor":{"kind":"git","name":"carol"}},
		"causes":[{"cause":{"kind":"commit","id":"abcdef0123456789"},"change":{"id":"cs-1","env":"prod","correlation_id":"corr-1","source":"git",
		"root_causes":[{"kind":"commit","id":"abcdef0123456789"}],"actor":{"kind":"git","name":"carol"},"at":"2026-01-02T03:04:05Z","affected":[]}}]}`)
	f.set("GET /log", 503, `{"title":"Service Unavailable","status":503,"detail":"the audit store is unavailable"}`)
	p := openBrowser(t, base)
	p.do("opening the lineage", time.Minute, chromedp.Navigate(base+"/#/deployments/dep-1"))
	p.waitJS("the page ready", `document.body.dataset.ready === 'true'`, time.Minute)
	p.waitJS("the lineage or an error", `!!document.querySelector('#lineage, #panel .error')`, 20*time.Second)
	got := eval[string](p, `document.querySelector('#lineage')?.textContent ?? 'no lineage: ' + document.querySelector('#panel').textContent`)
	for _, want := range []string{"prod/vpc/core", "failed", "terraform apply: exit 1", "commit abcdef012345", "the audit store is unavailable"} {
		if !strings.Contains(got, want) {
			t.Errorf("the lineage: %q, want %q", got, want)
		}
	}
	p.noProblems()
}

// The graph's status line says when the graph drawn was read, in UTC: a reading that fails
// leaves that time, and says it failed, instead of stating the old runtimes "as of" the moment
// the reading failed (in the browser's local time, its zone unsaid).
func TestWebPageSaysWhenTheGraphWasRead(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	f.setOnce("GET /graph", 200, `{"format":"karma.graph.v1","components":[{"id":"prod/vpc/core","env":"prod","type":"vpc","nickname":"core","runtime_status":"missing"}],"edges":[],"waves":[["prod/vpc/core"]]}`)
	f.set("GET /graph", 503, `{"title":"Service Unavailable","status":503,"detail":"the repository cannot be read"}`)
	f.set("GET /events", 200, ": karma events\nretry: 2000\n\n") // and closed: the page reconnects, and reads the graph again
	p := openBrowser(t, base)
	p.do("opening the page", time.Minute, chromedp.Navigate(base+"/"))
	p.waitJS("the page ready", `document.body.dataset.ready === 'true'`, time.Minute)
	asOf := regexp.MustCompile(`as of (\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ)`)
	first := asOf.FindStringSubmatch(p.text("#graph-status"))
	if first == nil {
		t.Fatalf("the graph's status line: %q, want its reading's time in UTC", p.text("#graph-status"))
	}
	p.waitJS("the failed reading", `document.querySelector('#graph-status').textContent.includes('could not read it again')`, 20*time.Second)
	got := p.text("#graph-status")
	if m := asOf.FindStringSubmatch(got); m == nil || m[1] != first[1] || !strings.Contains(got, "the repository cannot be read") {
		t.Errorf("after a failed reading: %q, want the graph as of %s and why it was not read again", got, first[1])
	}
	p.noProblems()
}

// A change's deployment states are drawn on the graph while its page is shown, and only then:
// left there, a deployment that failed in an old change read as the component failing now on
// every other view.
func TestWebPageLeavesNoChangeStatesOnTheGraph(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	f.set("GET /graph", 200, `{"format":"karma.graph.v1","components":[{"id":"prod/vpc/core","env":"prod","type":"vpc","nickname":"core","runtime_status":"present"}],"edges":[],"waves":[["prod/vpc/core"]]}`)
	f.set("GET /changes/cs-7", 200, `{"id":"cs-7","env":"prod","state":"failed","source":"git","actor":{"kind":"git","name":"carol"},"created_at":"2026-01-02T03:04:05Z",
		"root_causes":[{"kind":"commit","id":"abc"}],"roots":["prod/vpc/core"],"auto_approve":true,"approved":true,"counts":{"failed":1},"approvals_required":1,
		"waves":[["prod/vpc/core"]],"deployments":[{"component":"prod/vpc/core","deployment_id":"dep-1","wave":0,"state":"failed"}],"plans":[]}`)
	p := openBrowser(t, base)
	p.do("opening the change", time.Minute, chromedp.Navigate(base+"/#/changes/cs-7"))
	p.waitJS("the change", `document.querySelector('#change-state')?.textContent === 'failed'`, time.Minute)
	if got := eval[[]string](p, `karmaGraph.classes('prod/vpc/core')`); len(got) != 1 || got[0] != "st-failed" {
		t.Fatalf("on the change's page, prod/vpc/core drawn %v", got)
	}
	for _, route := range []string{"#/", "#/log", "#/changes"} {
		p.do("leaving for "+route, 20*time.Second, chromedp.Evaluate[chromedp.Void](`location.hash = '#/changes/cs-7'`))
		p.waitJS("the change", `document.querySelector('#change-state')?.textContent === 'failed'`, 20*time.Second)
		p.do("leaving for "+route, 20*time.Second, chromedp.Evaluate[chromedp.Void](`location.hash = '`+route+`'`))
		p.waitJS("the view of "+route, `!document.querySelector('#change-state') && !!document.querySelector('#panel h2')`, 20*time.Second)
		if got := eval[[]string](p, `karmaGraph.classes('prod/vpc/core')`); len(got) != 0 {
			t.Errorf("on %s, prod/vpc/core still drawn %v", route, got)
		}
	}
	p.noProblems()
}

// A view read slowly is not shown once its route has been left: the change asked for first,
// answered after the audit log opened since, replaced the audit log while the URL said #/log.
func TestWebPageShowsTheViewOfTheURL(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	f.set("GET /changes/cs-8", 200, `{"id":"cs-8","env":"prod","state":"done","source":"git","actor":{"kind":"git","name":"carol"},"created_at":"2026-01-02T03:04:05Z",
		"root_causes":[{"kind":"commit","id":"abc"}],"roots":["prod/vpc/core"],"auto_approve":true,"approved":true,"counts":{"applied":1},"approvals_required":1,
		"waves":[["prod/vpc/core"]],"deployments":[{"component":"prod/vpc/core","deployment_id":"dep-1","wave":0,"state":"applied"}],"plans":[]}`)
	slow := f.hold("GET /changes/cs-8")
	p := openBrowser(t, base)
	p.do("opening the page", time.Minute, chromedp.Navigate(base+"/"))
	p.waitJS("the page ready", `document.body.dataset.ready === 'true' && karmaPerf.routed === 1`, time.Minute)
	p.do("opening the change", 20*time.Second, chromedp.Evaluate[chromedp.Void](`location.hash = '#/changes/cs-8'`))
	select {
	case <-slow.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the page did not ask for the change")
	}
	p.do("opening the audit log", 20*time.Second, chromedp.Evaluate[chromedp.Void](`location.hash = '#/log'`))
	p.waitJS("the audit log", `!!document.querySelector('#audit-log') && karmaPerf.routed === 2`, 20*time.Second)
	close(slow.release)
	p.waitJS("the change's answer read", `karmaPerf.routed === 3`, 20*time.Second)
	if got := eval[string](p, `location.hash + ': ' + document.querySelector('#panel h2')?.textContent`); got != "#/log: Audit log" {
		t.Errorf("the page shows %q", got)
	}
	p.noProblems()
}

// A component's panel follows its deployments: an event of the component (or the event stream
// coming back after a drop) reads it again, and it says when it was read. It kept showing the
// runtime missing and no deployment after the component was deployed, as if current.
func TestWebPageReadsTheComponentAgainWhenItIsDeployed(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	view := func(status, deps string) string {
		return `{"id":"prod/vpc/core","env":"prod","type":"vpc","nickname":"core","runtime_status":"` + status + `","config":{},"runtime":null,
			"dependencies":[],"dependents":[],"diagnostics":[],"source":null,"deployments":[` + deps + `]}`
	}
	f.setOnce("GET /components/prod/vpc/core", 200, view("missing", ""))
	f.set("GET /components/prod/vpc/core", 200, view("present", `{"id":"dep-1","change_set_id":"cs-1","env":"prod","component":"prod/vpc/core","wave":0,
		"caused_by":[],"status":"applied","at":"2026-01-02T03:04:05Z","actor":{"kind":"git","name":"carol"}}`))
	// The stream gives the component's deployment.applied, and closes: the page reconnects.
	f.set("GET /events", 200, ": karma events\nretry: 2000\n\nid: 1\nevent: deployment.applied\ndata: "+
		`{"id":1,"type":"deployment.applied","message_id":"m-1","correlation_id":"corr-1","change_id":"cs-1","env":"prod","component":"prod/vpc/core","deployment_id":"dep-1","at":"2026-01-02T03:04:05Z"}`+"\n\n")
	p := openBrowser(t, base)
	p.do("opening the component", time.Minute, chromedp.Navigate(base+"/#/c/prod/vpc/core/history"))
	p.waitJS("the component", `!!document.querySelector('#tab-history')`, time.Minute)
	p.waitJS("the component read again", `document.querySelector('#component-status')?.textContent.includes('runtime present') && document.querySelector('#tab-history').textContent === 'History (1)'`, 20*time.Second)
	if got := p.text("#component-status"); !regexp.MustCompile(`as of \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ`).MatchString(got) {
		t.Errorf("the component's status line: %q, want when it was read", got)
	}
	p.noProblems()
}

// A refusal's errors reach the person: GET /log refusing a filter showed only "invalid query
// parameters: see errors", without the errors (which input, what is wrong), and without the
// filters to correct it.
func TestWebPageShowsWhichFilterWasRefused(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	f.set("GET /log", 400, `{"title":"Bad Request","status":400,"detail":"invalid query parameters: see errors",
		"errors":[{"pointer":"/query/since","detail":"want an RFC 3339 time such as 2026-03-14T09:30:00Z, got \"yesterday\""}]}`)
	p := openBrowser(t, base)
	p.do("opening the audit log", time.Minute, chromedp.Navigate(base+"/#/log?since=yesterday"))
	p.waitJS("the refusal", `!!document.querySelector('#panel .error')`, time.Minute)
	if got := p.text("#panel .error"); !strings.Contains(got, "/query/since") || !strings.Contains(got, `got "yesterday"`) {
		t.Errorf("the refusal shown: %q", got)
	}
	if got := eval[string](p, `document.querySelector('form.filters')?.elements.since.value ?? 'no filters'`); got != "yesterday" {
		t.Errorf("the since filter: %q", got)
	}
	p.noProblems()
}

// A graph read again whose dependencies are not those drawn is said to have changed: one whose
// edge consumes other keys, or joins other components, as many as before, was taken for the
// graph drawn, its old edges and keys then shown as of the new reading.
func TestWebPageSaysTheDependenciesChanged(t *testing.T) {
	chromium(t)
	f, base := servePage(t)
	graph := func(consumes string) string {
		return `{"format":"karma.graph.v1","components":[{"id":"prod/vpc/core","env":"prod","type":"vpc","nickname":"core","runtime_status":"present"},
			{"id":"prod/ecs-cluster/core","env":"prod","type":"ecs-cluster","nickname":"core","runtime_status":"present"}],
			"edges":[{"from":"prod/ecs-cluster/core","to":"prod/vpc/core","consumes":["` + consumes + `"]}],"waves":[["prod/vpc/core"],["prod/ecs-cluster/core"]]}`
	}
	f.setOnce("GET /graph", 200, graph("vpc_id"))
	f.set("GET /graph", 200, graph("private_subnet_ids"))
	f.set("GET /events", 200, ": karma events\nretry: 2000\n\n") // and closed: the page reconnects, and reads the graph again
	p := openBrowser(t, base)
	p.do("opening the page", time.Minute, chromedp.Navigate(base+"/"))
	p.waitJS("the page ready", `document.body.dataset.ready === 'true'`, time.Minute)
	p.waitJS("the repository changed", `document.querySelector('#graph-status').textContent.includes('the repository changed since')`, 20*time.Second)
	p.noProblems()
}
