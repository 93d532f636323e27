package main

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/usekarma/karma/shared/gitrepo/gittest"
)

// The web page in a real browser against karma serve on the example repository, deployed with
// real Terraform: search and select a component, propose a change (a schema error shown with
// its line, then the blast radius: what would redeploy and what would be skipped, and why),
// submit it, approve it, watch its waves apply live, open a deployment's lineage and its audit
// records. Screenshots of each step are kept under .cache/artefacts/web/.
func TestWebPage(t *testing.T) {
	needTerraform(t)
	chromium(t)
	examplesDir, _ := filepath.Abs(filepath.Join("..", "..", "examples"))
	o := gittest.OriginFrom(t, "config.git", examplesDir)
	t.Setenv("KARMA_GIT_URL", o.Bare)
	t.Setenv("KARMA_GIT_WRITE", "branch")
	state := t.TempDir()
	sv := startServe(t, &globals{}, "--repo", o.Work, "--state-dir", state, "--secret", "github:acme/config="+serveSecret, "--reconcile", "0", "--auto-approve")

	// Everything deployed first (a push, auto-approved), so that the change below has runtimes.
	// (prod/serverless-site/www is not: the example ownership policy keeps it to the web team,
	// and this commit's author is not in it.)
	head := gittest.Git(t, o.Work, "rev-parse", "HEAD")
	push := ghPush("refs/heads/main", zeroSHA, head, "ada", ghCommitOf(t, o.Work, zeroSHA, head))
	if code, body := sv.post(t, push, ghHeaders("push", uuid.NewString(), serveSecret, push)); code != 202 {
		t.Fatalf("push: %d %s", code, body)
	}
	l, _, _ := stores(t, state)
	deadline := time.Now().Add(3 * time.Minute)
	sv.waitIdle(t, deadline, func() bool {
		return appliedCount(t, l, "prod/serverless-api/public") == 1 && appliedCount(t, l, "dev/ecs-service/api") == 1
	})

	p := openBrowser(t, sv.url)
	p.do("opening the page", time.Minute, chromedp.Navigate(sv.url+"/"))
	p.waitJS("the graph drawn", `document.body.dataset.ready === 'true'`, time.Minute)
	if got := p.text("#graph-status"); !strings.HasPrefix(got, "12 components") {
		t.Errorf("graph status %q", got)
	}
	p.screenshot("01-graph")

	// Search, select with the keyboard: the component's panel, its neighbours highlighted.
	p.do("searching", 20*time.Second, chromedp.SendKeys(chromedp.CSS("#search"), "prod/vpc/co"), chromedp.WaitVisible(chromedp.CSS("#result-0")),
		chromedp.SendKeys(chromedp.CSS("#search"), "\r"))
	p.waitJS("the component's panel", `document.querySelector('#panel h2')?.textContent === 'prod/vpc/core'`, 20*time.Second)
	p.waitJS("its highlight", `karmaGraph.classes('prod/vpc/core').includes('sel') && karmaGraph.classes('prod/ecs-cluster/core').includes('down')`, 10*time.Second)
	p.screenshot("02-selected")
	p.do("its dependents", 20*time.Second, chromedp.Click(chromedp.CSS("#tab-dependents")))
	p.waitJS("the dependents with their keys", `document.querySelector('.tab-body')?.textContent.includes('private_subnet_ids')`, 20*time.Second)

	// Propose: a schema error first, then a valid change and its blast radius.
	p.do("the proposal editor", 20*time.Second, chromedp.Click(chromedp.CSS("#tab-propose")), chromedp.WaitVisible(chromedp.CSS("#proposal")))
	edit := func(what, from, to string) {
		p.t.Helper()
		expr := `(() => { const e = document.querySelector('#proposal'); e.value = e.value.replace(` + jsString(from) + `, ` + jsString(to) + `);
			e.dispatchEvent(new Event('input', {bubbles: true})); return e.value; })()`
		if v := eval[string](p, expr); !strings.Contains(v, to) {
			t.Fatalf("%s: the editor holds %s", what, v)
		}
	}
	edit("a schema error", `"az_count": 3`, `"az_count": "many"`)
	p.waitJS("the schema error inline", `document.querySelector('#proposal-result .errors')?.textContent.includes('/az_count (line')`, 30*time.Second)
	if eval[string](p, `document.querySelector('#proposal').getAttribute('aria-invalid')`) != "true" {
		t.Error("the editor is not marked invalid")
	}
	p.screenshot("03-schema-error")
	edit("a valid change", `"az_count": "many"`, `"az_count": 4`)
	p.waitJS("the blast radius", `!!document.querySelector('#blast-skipped')`, 30*time.Second)
	waves := p.text("#blast-waves")
	skipped := p.text("#blast-skipped")
	for _, want := range []string{"prod/ecs-service/api", "prod/lambda/handlers", "consumes private_subnet_ids of prod/vpc/core"} {
		if !strings.Contains(waves, want) {
			t.Errorf("the waves do not say %q: %s", want, waves)
		}
	}
	if !strings.Contains(skipped, "prod/ecs-cluster/core") || !strings.Contains(skipped, "no-consumed-key-changed") || !strings.Contains(skipped, "consumes vpc_id") {
		t.Errorf("skipped: %s", skipped)
	}
	p.waitJS("the blast radius on the graph", `karmaGraph.classes('prod/ecs-cluster/core').includes('br-skip') && karmaGraph.classes('prod/lambda/handlers').includes('br-redeploy')
		&& karmaGraph.classes('prod/vpc/core').includes('br-root')`, 10*time.Second)
	p.screenshot("04-blast-radius")

	// Submit; review its plan; approve; the waves apply, live.
	p.do("submitting", 20*time.Second, chromedp.SetValue(chromedp.CSS("#requested-by"), "Ada Lovelace <ada@example.com>"), chromedp.Click(chromedp.CSS("#submit-change")))
	p.waitJS("the change awaiting approval", `document.querySelector('#change-state')?.textContent === 'awaiting-approval' && !!document.querySelector('.plan')`, 2*time.Minute)
	if plan := p.text(".plan"); !strings.Contains(plan, "prod/vpc/core") || !strings.Contains(plan, "terraform_data.vpc") {
		t.Errorf("the plan under review: %s", plan)
	}
	hash := eval[string](p, `location.hash`)
	changeID, _ := url.PathUnescape(strings.TrimPrefix(hash, "#/changes/"))
	p.screenshot("05-review")
	p.do("approving", 20*time.Second, chromedp.Click(chromedp.CSS("#approve")))
	p.waitJS("the waves applied", `document.querySelector('#change-state')?.textContent === 'done'`, 3*time.Minute)
	p.waitJS("the live events", `document.querySelectorAll('#live-events li').length > 0 && document.querySelector('#live-events').textContent.includes('deployment.applied')`, 30*time.Second)
	p.waitJS("the states on the graph", `karmaGraph.classes('prod/vpc/core').includes('st-applied') && karmaGraph.classes('prod/ecs-cluster/core').includes('st-skipped')`, 10*time.Second)
	if w := p.text("#change-waves"); !strings.Contains(w, "prod/ecs-cluster/core skipped — no-consumed-key-changed") {
		t.Errorf("change %s: the waves say %s", changeID, w)
	}
	p.screenshot("06-applied")

	// The lineage of the service's deployment, back to the request; its audit records.
	p.do("the lineage", 20*time.Second, chromedp.Click(chromedp.CSS(`#change-waves li[data-id="prod/ecs-service/api"] a[href^="#/deployments/"]`)))
	p.waitJS("the timeline", `!!document.querySelector('#lineage .root')`, 20*time.Second)
	if tl := p.text("#lineage"); !strings.Contains(tl, "prod/vpc/core") || !strings.Contains(tl, "Root cause") || !strings.Contains(tl, "Ada Lovelace") {
		t.Errorf("the lineage: %s", tl)
	}
	p.screenshot("07-lineage")
	p.do("its audit records", 20*time.Second, chromedp.Click(chromedp.CSS(`#lineage .root a[href^="#/log"]`)))
	p.waitJS("the audit log", `document.querySelectorAll('#audit-log tbody tr').length > 0`, 20*time.Second)
	if log := p.text("#audit-log"); !strings.Contains(log, "deployment.applied") || !strings.Contains(log, "api.change_approved") {
		t.Errorf("the change's audit records: %s", log)
	}
	p.screenshot("08-audit-log")
	p.noProblems()
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}
