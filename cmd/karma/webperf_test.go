package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/usekarma/karma/shared/model/modeltest"
)

// The web page on a generated repository of 5,000 components (one environment, 10 waves, 3
// references each): how long the first render takes (navigation to the graph drawn, the graph
// already built by the server) and how long selecting a component takes (the search's Enter
// to the highlight painted), measured by the page itself (window.karmaPerf). Reported — in the
// log, in .cache/artefacts/web/perf.json and in docs/performance.md — never asserted: the
// figures are this machine's. KARMA_TEST_WEB_COMPONENTS changes the size.
func TestWebPagePerformance(t *testing.T) {
	chromium(t)
	if testing.Short() {
		t.Skip("-short: the 5,000-component page measurement")
	}
	n := 5000
	if v := os.Getenv("KARMA_TEST_WEB_COMPONENTS"); v != "" {
		fmt.Sscan(v, &n)
	}
	repo := filepath.Join(t.TempDir(), "repo")
	st, err := modeltest.Generate(repo, modeltest.Spec{Components: n, Envs: []string{"prod"}, Layers: 10, RefsPerComponent: 3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	commitAs(t, repo, "Ada", "generated")
	sv := startServe(t, &globals{}, "--repo", repo, "--state-dir", t.TempDir(), "--secret", "github:acme/config="+serveSecret, "--reconcile", "0")
	// The server builds and encodes the graph once; the page's figures are then the page's.
	start := time.Now()
	resp, err := http.Get(sv.url + "/graph")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /graph: %v %v", resp, err)
	}
	var doc struct {
		Components []struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"components"`
		Edges []struct {
			From string `json:"from"`
			To   string `json:"to"`
		} `json:"edges"`
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	build := time.Since(start)
	if err != nil || len(doc.Components) != n {
		t.Fatalf("GET /graph: %d components, %v", len(doc.Components), err)
	}
	var targets []string // spread over the waves: the graph lists components wave by wave
	for _, i := range []int{0, n / 4, n / 2, 3 * n / 4, n - 1} {
		targets = append(targets, doc.Components[i].ID)
	}
	// The type filter: the dependencies drawn are then those between components of that type.
	filterType := doc.Components[0].Type
	typeOf := map[string]string{}
	for _, c := range doc.Components {
		typeOf[c.ID] = c.Type
	}
	sameType := 0
	for _, e := range doc.Edges {
		if typeOf[e.From] == filterType && typeOf[e.To] == filterType {
			sameType++
		}
	}

	type perf struct {
		GraphFetched float64 `json:"graphFetched"`
		FirstRender  float64 `json:"firstRender"`
		Components   int     `json:"components"`
		Edges        int     `json:"edges"`
		Elements     float64 `json:"elements"` // the document turned into Cytoscape's elements
		Init         float64 `json:"init"`     // Cytoscape's construction
		Layout       float64 `json:"layout"`   // laid out and fitted to the view
		Selects      []struct {
			ID string  `json:"id"`
			MS float64 `json:"ms"`
		} `json:"selects"`
	}
	var loads []perf
	var selects []float64
	for round := 0; round < 3; round++ {
		p := openBrowser(t, sv.url)
		p.do("opening the page", 2*time.Minute, chromedp.Navigate(sv.url+"/"))
		p.waitJS("the graph drawn", `document.body.dataset.ready === 'true'`, 2*time.Minute)
		for _, id := range targets {
			eval[string](p, `document.querySelector('#search').value = ''`)
			p.do("searching "+id, 20*time.Second, chromedp.SendKeys(chromedp.CSS("#search"), id))
			p.waitJS("the search's match of "+id, `[...document.querySelectorAll('#search-results li')].some((li) => li.textContent === `+jsString(id)+`)`, 20*time.Second)
			at := eval[int](p, `[...document.querySelectorAll('#search-results li')].findIndex((li) => li.textContent === `+jsString(id)+`)`)
			p.do("selecting "+id, 20*time.Second, chromedp.SendKeys(chromedp.CSS("#search"), strings.Repeat(kb.ArrowDown, at)+"\r"))
			p.waitJS("the highlight and the panel of "+id, `karmaGraph.classes(`+jsString(id)+`).includes('sel') && document.querySelector('#panel h2')?.textContent === `+jsString(id), 20*time.Second)
		}
		p.waitJS("the selections measured", `karmaPerf.selects.length === `+fmt.Sprint(len(targets)), 20*time.Second)
		got := eval[perf](p, `JSON.parse(JSON.stringify(karmaPerf))`)
		loads = append(loads, got)
		var these []string
		for _, s := range got.Selects {
			selects = append(selects, s.MS)
			these = append(these, fmt.Sprintf("%.0f", s.MS))
		}
		t.Logf("load %d: graph fetched and parsed at %.0f ms, elements %.0f ms, init %.0f ms, layout %.0f ms, first render (painted) at %.0f ms; selections in order: %s ms",
			round, got.GraphFetched, got.Elements, got.Init, got.Layout, got.FirstRender, strings.Join(these, ", "))
		if round == 0 {
			p.screenshot("perf-5000")
			// Every dependency is drawn; the type filter leaves those between its components.
			p.waitJS("every dependency drawn", `karmaGraph.lines() === `+fmt.Sprint(len(doc.Edges)), 20*time.Second)
			setType := func(typ string) {
				eval[bool](p, `(() => { const s = document.querySelector('#type'); s.value = `+jsString(typ)+`; s.dispatchEvent(new Event('change')); return true })()`)
			}
			setType(filterType)
			p.waitJS("the dependencies between "+filterType+" components drawn", `karmaGraph.lines() === `+fmt.Sprint(sameType), 20*time.Second)
			p.screenshot("perf-5000-filtered")
			setType("")
			p.waitJS("every dependency drawn again", `karmaGraph.lines() === `+fmt.Sprint(len(doc.Edges)), 20*time.Second)
		}
		p.noProblems()
	}
	var renders []float64
	for _, l := range loads {
		renders = append(renders, l.FirstRender)
	}
	slices.Sort(renders)
	slices.Sort(selects)
	report := map[string]any{"components": st.Components, "edges": loads[0].Edges, "server_graph_build_ms": build.Milliseconds(),
		"first_render_ms": renders, "graph_fetched_ms": loads[0].GraphFetched, "select_highlight_ms": selects}
	t.Logf("web page, %d components, %d edges: first render %.0f ms (median of %d loads: %v), graph fetched at %.0f ms; select and highlight: median %.1f ms, max %.1f ms (%d selections: %v); the server's first graph build %s",
		st.Components, loads[0].Edges, renders[len(renders)/2], len(renders), renders, loads[0].GraphFetched, selects[len(selects)/2], selects[len(selects)-1], len(selects), selects, build.Round(time.Millisecond))
	b, _ := json.MarshalIndent(report, "", "  ")
	os.WriteFile(filepath.Join(artefactsDir(t), "perf.json"), append(b, '\n'), 0o644)
}
