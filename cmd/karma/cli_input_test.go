package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
)

// apiOver is the real API handler (shared/api) over the audit log and change sets of a state
// directory, served by an httptest server whose pages are at most pageCap long (a limit above
// it, or none, is lowered to it: the server's answer is the real one, its pages are just short).
// It remembers the query of every request.
type apiOver struct {
	url  string
	mu   sync.Mutex
	asks []url.Values // GET /log and GET /changes queries, as the client sent them
}

func (s *apiOver) asked(path string) []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []url.Values
	for _, q := range s.asks {
		if q.Get("_path") == path {
			out = append(out, q)
		}
	}
	return out
}

// The API's dependencies these tests never reach (GET /log, GET /changes and the lookups of
// change sets and deployments are asked).
type (
	unusedGraphs    struct{ api.Graphs }
	unusedPublisher struct{ api.Publisher }
)

func startAPIOver(t *testing.T, db *embedded.DB, pageCap int) *apiOver {
	t.Helper()
	ctx := context.Background()
	log, err := embedded.NewAuditLog(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	css, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	lin, err := embedded.NewLineage(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Graphs: unusedGraphs{}, ChangeSets: css, Lineage: lin, Audit: log,
		Publisher: unusedPublisher{}, Auth: api.InsecureLocal{User: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	s := &apiOver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		asked := url.Values{"_path": {r.URL.Path}}
		for k, v := range q {
			asked[k] = v
		}
		s.mu.Lock()
		s.asks = append(s.asks, asked)
		s.mu.Unlock()
		if n, err := strconv.Atoi(q.Get("limit")); (r.URL.Path == "/log" || r.URL.Path == "/changes") && (err != nil || n > pageCap) {
			q.Set("limit", strconv.Itoa(pageCap))
			r.URL.RawQuery = q.Encode()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// fillAudit appends n records to the state's audit log over three chains, two records at each
// instant (so that pages end between records of the same time), in time order.
func fillAudit(t *testing.T, db *embedded.DB, n int) {
	t.Helper()
	ctx := context.Background()
	log, err := embedded.NewAuditLog(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	chains := []string{"prod/vpc/core", "prod/ecs-service/api", "change/chg-1"}
	types := []string{message.TypeChangeDetected, "deployment.scheduled", "deployment.planned", "deployment.applied"}
	base := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	var recs []audit.Record
	for i := range n {
		chain := chains[i%len(chains)]
		r := audit.Record{MessageID: fmt.Sprintf("msg-%04d", i), Type: types[i%len(types)], Version: 1, Env: "prod", Chain: chain,
			CorrelationID: "chg-1", ActorKind: "git", Actor: "Ada <ada@example.com>", OccurredAt: base.Add(time.Duration(i/2) * time.Second)}
		if !strings.HasPrefix(chain, "change/") {
			r.Component = chain
		}
		if i > 0 {
			r.CausationID = fmt.Sprintf("msg-%04d", i-1)
		}
		r.Body, _ = json.Marshal(map[string]any{"id": r.MessageID, "type": r.Type, "payload": map[string]any{}})
		recs = append(recs, r)
	}
	if added, err := log.Append(ctx, recs...); err != nil || added != n {
		t.Fatalf("append: %d of %d, %v", added, n, err)
	}
}

// `karma audit log --server` follows next_cursor: every record comes back, in the log's order,
// as the local command prints them, in text and JSON; --limit N stops at N (and asks no more
// than it needs); the filters hold across pages.
func TestRemoteAuditLogReadsEveryPage(t *testing.T) {
	repo, state, db := demoRepoDB(t)
	const total, pageCap = 250, 40
	fillAudit(t, db, total)
	sv := startAPIOver(t, db, pageCap)
	g := &globals{}
	local := func(args ...string) string {
		t.Helper()
		code, out, errOut := karmaWith(t, g, append(append([]string{"audit", "log"}, args...), "--repo", repo, "--state-dir", state)...)
		if code != 0 {
			t.Fatalf("audit log %v: exit %d %s", args, code, errOut)
		}
		return out
	}
	remote := func(args ...string) string {
		t.Helper()
		code, out, errOut := karmaWith(t, g, append(append([]string{"audit", "log"}, args...), "--server", sv.url)...)
		if code != 0 {
			t.Fatalf("audit log --server %v: exit %d %s", args, code, errOut)
		}
		return out
	}

	// Text: the same lines, every record, across ceil(250/40) = 7 pages.
	out := remote()
	if want := local(); out != want {
		t.Errorf("audit log --server differs from the local log:\n--- server\n%s\n--- local\n%s", head(out), head(want))
	}
	if !strings.HasSuffix(out, fmt.Sprintf("\n%d record(s)\n", total)) {
		t.Errorf("audit log --server does not end with %d record(s):\n%s", total, tail(out))
	}
	if asks := sv.asked("/log"); len(asks) != 7 || asks[0].Get("cursor") != "" || asks[1].Get("cursor") == "" {
		t.Errorf("GET /log asked %d times (%v); want 7 pages, following next_cursor", len(asks), asks)
	}
	for _, q := range sv.asked("/log") {
		if n, err := strconv.Atoi(q.Get("limit")); err != nil || n < 1 || n > 1000 {
			t.Errorf("GET /log limit %q: the API takes 1 to 1000", q.Get("limit"))
		}
	}

	// JSON: the same document, every record once, in (occurred_at, chain, seq) order.
	js := remote("--json")
	if want := local("--json"); js != want {
		t.Errorf("audit log --server --json differs from the local log's")
	}
	var recs []explainedRecord
	if err := json.Unmarshal([]byte(js), &recs); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i, r := range recs {
		ids[r.MessageID] = true
		if i > 0 {
			p := recs[i-1]
			if r.OccurredAt.Before(p.OccurredAt) || (r.OccurredAt.Equal(p.OccurredAt) && (r.Chain < p.Chain || (r.Chain == p.Chain && r.Seq <= p.Seq))) {
				t.Errorf("record %d (%s %s#%d) after %s %s#%d: out of order", i, r.OccurredAt, r.Chain, r.Seq, p.OccurredAt, p.Chain, p.Seq)
			}
		}
	}
	if len(recs) != total || len(ids) != total {
		t.Errorf("audit log --server --json: %d records, %d distinct; want %d", len(recs), len(ids), total)
	}

	// --limit N: the first N, as locally, and no more asked for than needed (40 + 40 + 15).
	before := len(sv.asked("/log"))
	out = remote("--limit", "95")
	if want := local("--limit", "95"); out != want || !strings.HasSuffix(out, "95 record(s)\n(more: --limit 95 reached; narrow the query or raise --limit)\n") {
		t.Errorf("audit log --server --limit 95:\n%s\nwant the local\n%s", tail(out), tail(want))
	}
	var limits []string
	for _, q := range sv.asked("/log")[before:] {
		limits = append(limits, q.Get("limit"))
	}
	if !slices.Equal(limits, []string{"95", "55", "15"}) {
		t.Errorf("--limit 95 asked limits %v", limits)
	}
	js = remote("--limit", "95", "--json")
	if want := local("--limit", "95", "--json"); js != want {
		t.Errorf("audit log --server --limit 95 --json differs from the local log's")
	}
	var first []explainedRecord
	if err := json.Unmarshal([]byte(js), &first); err != nil || len(first) != 95 {
		t.Errorf("--limit 95 --json: %d records (%v)", len(first), err)
	}
	for i := range first {
		if first[i].MessageID != recs[i].MessageID {
			t.Errorf("--limit 95 --json: record %d is %s, not the log's %s", i, first[i].MessageID, recs[i].MessageID)
			break
		}
	}
	// A limit past the end, or at it: everything, no notice, locally as through the API.
	for _, limit := range []string{"1000", strconv.Itoa(total)} {
		if out := remote("--limit", limit); !strings.HasSuffix(out, fmt.Sprintf("\n%d record(s)\n", total)) {
			t.Errorf("--server --limit %s:\n%s", limit, tail(out))
		}
		if out := local("--limit", limit); !strings.HasSuffix(out, fmt.Sprintf("\n%d record(s)\n", total)) {
			t.Errorf("--limit %s:\n%s", limit, tail(out))
		}
	}
	// One short of the end: the notice, locally as through the API.
	short := strconv.Itoa(total - 1)
	if out, want := remote("--limit", short), local("--limit", short); out != want || !strings.Contains(out, "(more: --limit "+short+" reached") {
		t.Errorf("--limit %s:\n%s\nwant the local\n%s", short, tail(out), tail(want))
	}

	// A filter across pages: the same records.
	if out, want := remote("--component", "prod/vpc/core"), local("--component", "prod/vpc/core"); out != want || !strings.Contains(out, "84 record(s)") {
		t.Errorf("--component across pages:\n%s\nwant\n%s", tail(out), tail(want))
	}
}

func head(s string) string {
	if lines := strings.SplitAfter(s, "\n"); len(lines) > 5 {
		return strings.Join(lines[:5], "") + "…"
	}
	return s
}

func tail(s string) string {
	if lines := strings.SplitAfter(s, "\n"); len(lines) > 5 {
		return "…" + strings.Join(lines[len(lines)-5:], "")
	}
	return s
}

// `karma changes --server` follows next_cursor too: every change set, as the local command
// lists them.
func TestRemoteChangesReadsEveryPage(t *testing.T) {
	repo, state, db := demoRepoDB(t)
	css, err := embedded.NewChangeSets(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	for i := range 8 {
		cs := &changeset.ChangeSet{ID: fmt.Sprintf("chg-%02d", i), Env: "prod", CorrelationID: fmt.Sprintf("chg-%02d", i), Source: "git",
			Actor: message.Actor{Kind: "git", Name: "Ada"}, CreatedAt: base.Add(time.Duration(i) * time.Minute), Nodes: map[string]*changeset.Node{}}
		if i%3 == 0 {
			cs.RejectedBy, cs.RejectReason = "grace", "not this week"
		}
		if _, err := css.Create(context.Background(), cs); err != nil {
			t.Fatal(err)
		}
	}
	sv := startAPIOver(t, db, 3)
	g := &globals{}
	for _, args := range [][]string{{}, {"--json"}, {"--state", "rejected"}, {"--state", "awaiting-approval", "--json"}} {
		_, want, _ := karmaWith(t, g, append(append([]string{"changes"}, args...), "--repo", repo, "--state-dir", state)...)
		code, out, errOut := karmaWith(t, g, append(append([]string{"changes"}, args...), "--server", sv.url)...)
		if code != 0 || out != want {
			t.Errorf("changes --server %v: exit %d %s\n%s\nwant the local\n%s", args, code, errOut, out, want)
		}
	}
	before := len(sv.asked("/changes"))
	if out := karmaOK(t, g, "changes", "--server", sv.url); !strings.Contains(out, "chg-00") || !strings.HasSuffix(out, "8 change(s)\n") {
		t.Errorf("changes --server:\n%s", out)
	}
	if asks := sv.asked("/changes")[before:]; len(asks) != 3 || asks[1].Get("cursor") != "chg-05" {
		t.Errorf("GET /changes asked %v; want 3 pages of 3, following next_cursor", asks)
	}
}

// The CLI's --state values are the API's, both ways: the API refuses bogus listing its states,
// and accepts every state the CLI does.
func TestChangesStatesAreTheAPIs(t *testing.T) {
	db, err := embedded.Open(filepath.Join(t.TempDir(), "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sv := startAPIOver(t, db, 500)
	resp, err := http.Get(sv.url + "/changes?state=bogus")
	if err != nil {
		t.Fatal(err)
	}
	var p api.Problem
	json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || len(p.Errors) != 1 || !strings.HasPrefix(p.Errors[0].Detail, "want one of ") {
		t.Fatalf("GET /changes?state=bogus: %d %+v", resp.StatusCode, p)
	}
	if apiStates := strings.Split(strings.TrimPrefix(p.Errors[0].Detail, "want one of "), ", "); !slices.Equal(apiStates, changeStates) {
		t.Errorf("the API's states %v, the CLI's %v", apiStates, changeStates)
	}
	for _, s := range changeStates {
		resp, err := http.Get(sv.url + "/changes?state=" + url.QueryEscape(s))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /changes?state=%s: %d", s, resp.StatusCode)
		}
	}
}

// Filters the API would refuse are refused by the local commands too: exit 2, naming the flag
// and the value (and, where there is a list, the valid values), nothing opened or run.
func TestCLIRefusesBadFilters(t *testing.T) {
	state := t.TempDir()
	g := &globals{}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"changes", "--state", "bogus"}, []string{`--state "bogus"`, "awaiting-approval", "expired"}},
		{[]string{"changes", "--state", "bogus", "--server", "http://127.0.0.1:1"}, []string{`--state "bogus"`, "in-progress"}},
		{[]string{"audit", "log", "--limit", "-5"}, []string{"--limit -5", "at least 1"}},
		{[]string{"audit", "log", "--limit", "-5", "--server", "http://127.0.0.1:1"}, []string{"--limit -5"}},
		{[]string{"audit", "log", "--since", "-1h"}, []string{`--since "-1h"`, "negative", "1h0m0s"}},
		{[]string{"dlq", "list", "--queue", "nosuch"}, []string{`--queue "nosuch"`, "ingest, resolve", "audit"}},
		{[]string{"dlq", "redrive", "--queue", "nosuch"}, []string{`--queue "nosuch"`, "plan, apply"}},
	} {
		code, out, errOut := karmaWith(t, g, append(c.args, "--state-dir", state)...)
		if code != 2 || out != "" {
			t.Errorf("karma %v: exit %d, stdout %q; want 2 and nothing", c.args, code, out)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("karma %v: %q lacks %q", c.args, errOut, w)
			}
		}
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Errorf("refused commands wrote %v", entries)
	}
	// What is valid still works.
	for _, args := range [][]string{{"dlq", "list", "--queue", "resolve"}, {"audit", "log", "--since", "1h", "--limit", "3"}, {"changes", "--state", "expired"}} {
		if code, _, errOut := karmaWith(t, g, append(args, "--state-dir", state)...); code != 0 {
			t.Errorf("karma %v: exit %d %s", args, code, errOut)
		}
	}
}

// --input is read up to the API's body limit: one byte more is refused naming --input and the
// limit, and an input that never ends is refused after limit+1 bytes, not read to its end.
func TestProposeChangeInputBounded(t *testing.T) {
	dir := t.TempDir()
	fill := func(n int) []byte { // a JSON object of exactly n bytes
		b := []byte(`{"a":"` + strings.Repeat("x", n-8) + `"}`)
		if len(b) != n {
			t.Fatalf("%d bytes", len(b))
		}
		return b
	}
	atLimit, over := filepath.Join(dir, "at.json"), filepath.Join(dir, "over.json")
	os.WriteFile(atLimit, fill(api.DefaultMaxBody), 0o644)
	os.WriteFile(over, fill(api.DefaultMaxBody+1), 0o644)
	if data, err := readInput(atLimit); err != nil || len(data) != api.DefaultMaxBody {
		t.Errorf("an input of exactly the limit: %d bytes, %v", len(data), err)
	}
	twice := filepath.Join(dir, "twice.json")
	os.WriteFile(twice, []byte(`{"az_count": 3, "tags": {"team": "a", "team": "b"}}`), 0o644)
	if _, err := readInput(twice); err == nil || !strings.Contains(err.Error(), "--input "+twice+": /tags/team names a member") {
		t.Errorf("an input naming a member twice: %v", err)
	}
	limit := strconv.Itoa(api.DefaultMaxBody)
	if _, err := readInput(over); err == nil || !strings.Contains(err.Error(), "--input "+over) || !strings.Contains(err.Error(), limit+" bytes") {
		t.Errorf("an input one byte over the limit: %v", err)
	}

	// Standard input that does not end (as /dev/zero; here 16 MiB, so that a regression fails
	// rather than exhausting memory): refused having read limit+1 bytes, not read to its end.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var written int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.Close()
		chunk := make([]byte, 64<<10)
		for written < 16*api.DefaultMaxBody {
			n, err := w.Write(chunk)
			written += int64(n)
			if err != nil {
				return
			}
		}
	}()
	old := os.Stdin
	os.Stdin = r
	_, err = readInput("-")
	os.Stdin = old
	r.Close()
	<-done
	if err == nil || !strings.Contains(err.Error(), "--input -") || !strings.Contains(err.Error(), limit+" bytes") {
		t.Errorf("an endless standard input: %v", err)
	}
	if written >= 16*api.DefaultMaxBody {
		t.Errorf("an endless standard input: %d bytes read before the refusal", written)
	}

	// Through the command: non-zero, naming --input, nothing committed.
	repo, state := demoRepo(t)
	headBefore := git(t, repo, "rev-parse", "HEAD")
	code, out, errOut := karmaWith(t, &globals{}, "propose-change", "vpc", "core", "--env", "prod", "--input", over, "--repo", repo, "--state-dir", state)
	if code == 0 || !strings.Contains(errOut, "--input "+over) || !strings.Contains(errOut, limit+" bytes") {
		t.Errorf("propose-change --input (over the limit): exit %d %s%s", code, out, errOut)
	}
	if h := git(t, repo, "rev-parse", "HEAD"); h != headBefore {
		t.Errorf("HEAD moved from %s to %s", headBefore, h)
	}
}

// `karma apply nosuch-id` is refused before anything runs: exit 2 naming the id, the queued
// change still queued, no change set made, nothing recorded; with a real id beside an unknown
// one, the real one is not approved either.
func TestApplyUnknownChangeRunsNothing(t *testing.T) {
	repo, state := demoRepo(t)
	g := &globals{}
	base := []string{"--repo", repo, "--state-dir", state}
	// Nothing queued that could become them: refused before anything runs.
	code, out, errOut := karmaWith(t, g, append([]string{"apply", "nosuch-id", "also-not", "--auto-approve"}, base...)...)
	if code != 2 || !strings.Contains(errOut, "no change set nosuch-id, also-not") || strings.TrimSpace(out) != "" {
		t.Errorf("apply nosuch-id: exit %d\n%s\n%s", code, out, errOut)
	}
	if all := changeSets(t, state); len(all) != 0 {
		t.Errorf("apply nosuch-id resolved %d change set(s)", len(all))
	}
	_, a, _ := stores(t, state)
	if recs, err := a.Query(context.Background(), audit.Query{}); err != nil || len(recs) != 0 {
		t.Errorf("apply nosuch-id recorded %d audit record(s) (%v)", len(recs), err)
	}

	// With a change queued, an id may name the change set it becomes (propose-change, then
	// apply <its id> at once): the queued work runs first, and an id still unknown is refused.
	needTerraform(t)
	karmaOK(t, g, append([]string{"ingest", "commit"}, base...)...)
	code, _, errOut = karmaWith(t, g, append([]string{"apply", "nosuch-id", "--auto-approve"}, base...)...)
	if code != 2 || !strings.Contains(errOut, "no change set nosuch-id") {
		t.Errorf("apply nosuch-id with a change queued: exit %d %s", code, errOut)
	}
	all := changeSets(t, state)
	if len(all) == 0 {
		t.Fatal("the queued change did not become a change set")
	}
	id := all[0].ID
	code, _, errOut = karmaWith(t, g, append([]string{"apply", id, "nosuch-id", "--auto-approve"}, base...)...)
	if code != 2 || !strings.Contains(errOut, "no change set nosuch-id") || strings.Contains(errOut, id) {
		t.Errorf("apply %s nosuch-id: exit %d %s", id, code, errOut)
	}
	for _, cs := range changeSets(t, state) {
		if cs.ID == id && (cs.Approved || len(cs.Approvals) > 0) {
			t.Errorf("change set %s approved by an apply that was refused", id)
		}
	}
}
