// Package modeltest generates synthetic config repositories for benchmarks and tests.
//
// A generated repository looks like a real one: iac/<env>/<type>/<nickname>/config.json files
// of a few hundred bytes (tags, nested objects, arrays), a few shared iac/_base files (base
// layers and base-only "defaults" templates that some components extend), and references of
// all three kinds: *_nickname keys, karma.depends_on and "${<type>/<nick>.runtime.<key>}".
// Components are arranged in layers; a component references only components of earlier layers
// (always at least one of the layer just before), so the graph has no cycles and is Layers
// waves deep. Every environment holds the same components (as real environments mirror each
// other), with environment-specific values. Output is deterministic given the Spec.
package modeltest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// Spec describes a repository to generate.
type Spec struct {
	Components       int      // total over all environments (split evenly)
	Envs             []string // default ["prod"]
	Layers           int      // default 10
	RefsPerComponent int      // distinct dependencies per component outside layer 0 (default 3)
	Seed             int64
	// Fanout, when > 0, makes component "vpc/hub" (layer 0) have exactly Fanout downstream
	// components (transitively, seed excluded) in each environment; the others never reach it.
	// Query Stats.Hub.
	Fanout int
}

// Stats describe what was generated. References counts every reference (a component may name
// the same dependency twice, e.g. a vpc_nickname key and a ${vpc/x.runtime.vpc_id}); Edges
// counts distinct (dependent, dependency) pairs, i.e. graph edges.
type Stats struct {
	Components, References, Edges, Files int
	Bytes                                int64
	Hub                                  string // "<env>/vpc/hub" of the first env when Spec.Fanout > 0
}

// types by layer depth: foundations first, consumers later.
var layerTypes = [][]string{
	{"vpc", "route53-zone", "kms-key"},
	{"s3-bucket", "ecs-cluster", "rds-cluster", "sqs-queue"},
	{"lambda", "ecs-service", "dynamodb-table", "sns-topic"},
	{"serverless-api", "serverless-site", "cloudfront-dist", "step-function"},
}

var (
	words       = []string{"core", "api", "web", "data", "auth", "billing", "search", "events", "media", "ops"}
	runtimeKeys = []string{"arn", "id", "name", "url", "endpoint"}
	sizes       = []string{"t3.small", "t3.medium", "m6i.large", "m6i.xlarge", "c6g.large"}
)

type comp struct {
	typ, nick string
	deps      []int // indexes of the components it depends on
}

func (c *comp) ref() string { return c.typ + "/" + c.nick }

// GenerateFanout writes a one-environment ("prod") repository of n components, 10 layers, 3
// references each, where Stats.Hub ("prod/vpc/hub") has exactly `affected` downstream components.
func GenerateFanout(dir string, n, affected int) (Stats, error) {
	return Generate(dir, Spec{Components: n, Envs: []string{"prod"}, Layers: 10, RefsPerComponent: 3, Seed: 1, Fanout: affected})
}

// Generate writes the repository described by spec under dir (which may exist).
func Generate(dir string, spec Spec) (Stats, error) {
	if len(spec.Envs) == 0 {
		spec.Envs = []string{"prod"}
	}
	if spec.Layers <= 0 {
		spec.Layers = 10
	}
	if spec.RefsPerComponent <= 0 {
		spec.RefsPerComponent = 3
	}
	n := spec.Components / len(spec.Envs)
	if n < 1 || spec.Fanout > n-(n+spec.Layers-1)/spec.Layers {
		return Stats{}, fmt.Errorf("modeltest: %d components per environment, fanout %d: too few", n, spec.Fanout)
	}
	comps := plan(rand.New(rand.NewPCG(uint64(spec.Seed), 0x6b61726d61)), n, spec)
	st := Stats{Components: n * len(spec.Envs)}
	if spec.Fanout > 0 {
		st.Hub = spec.Envs[0] + "/vpc/hub"
	}
	files := make(chan [2]string, 256) // written in parallel: 100,000 files take a while
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0)*2)
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range files {
				p := filepath.Join(dir, filepath.FromSlash(f[0]))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					errs[w] = err
				} else if err := os.WriteFile(p, []byte(f[1]), 0o644); err != nil {
					errs[w] = err
				}
			}
		}()
	}
	emit := func(rel string, v any) {
		b, _ := json.MarshalIndent(v, "", "  ")
		st.Files++
		st.Bytes += int64(len(b)) + 1
		files <- [2]string{rel, string(b) + "\n"}
	}
	for _, types := range layerTypes {
		for _, t := range types {
			emit("iac/_base/"+t+"/defaults/config.json", map[string]any{
				"tags":       map[string]any{"ManagedBy": "karma", "Template": t},
				"monitoring": map[string]any{"enabled": true, "retention_days": 30, "alarms": []any{"errors", "latency"}},
			})
		}
	}
	for i, c := range comps {
		if i%50 == 7 {
			emit("iac/_base/"+c.ref()+"/config.json", map[string]any{
				"tags":   map[string]any{"Owner": fmt.Sprintf("team-%d", i%13), "DataClass": "internal"},
				"backup": map[string]any{"enabled": true, "window": "03:00-04:00"},
			})
		}
	}
	for ei, env := range spec.Envs {
		// Every environment has the same plan; its values come from its own random stream.
		erng := rand.New(rand.NewPCG(uint64(spec.Seed), uint64(ei)+1))
		for i := range comps {
			emit("iac/"+env+"/"+comps[i].ref()+"/config.json", config(erng, env, comps, i, &st))
		}
	}
	close(files)
	wg.Wait()
	return st, errors.Join(errs...)
}

// plan lays out one environment: types, nicknames, layers and dependencies.
func plan(rng *rand.Rand, n int, spec Spec) []comp {
	comps := make([]comp, n)
	layerOf := func(i int) int { return i * spec.Layers / n }
	// group 1: the hub and the components reaching it; group 0: everything else.
	group := make([]int8, n)
	if spec.Fanout > 0 {
		group[0] = 1
		first := (n + spec.Layers - 1) / spec.Layers // the first index of layer 1
		for k := 0; k < spec.Fanout; k++ {
			group[first+k*(n-first)/spec.Fanout] = 1
		}
	}
	// done[g] lists finished components of group g in layers before the current one; prev[g]
	// those of the layer just before.
	var done, prev, cur [2][]int
	layer := 0
	for i := range comps {
		if l := layerOf(i); l != layer {
			for g := range 2 {
				done[g] = append(done[g], cur[g]...)
				prev[g], cur[g] = cur[g], nil
			}
			layer = l
		}
		types := layerTypes[min(layer*len(layerTypes)/spec.Layers, len(layerTypes)-1)]
		c := &comps[i]
		c.typ = types[rng.IntN(len(types))]
		c.nick = fmt.Sprintf("%s-%06d", words[rng.IntN(len(words))], i)
		if spec.Fanout > 0 && i == 0 {
			c.typ, c.nick = "vpc", "hub"
		}
		g := group[i]
		cur[g] = append(cur[g], i)
		if layer == 0 || len(done[g]) == 0 {
			continue
		}
		// the first dependency comes from the previous layer (of the own group when possible),
		// the others from any earlier layer; a group-0 component never depends on group 1.
		first := prev[g]
		if len(first) == 0 {
			first = done[g]
		}
		c.deps = append(c.deps, first[rng.IntN(len(first))])
		extra := 0 // group 1 may also depend on group 0
		if g == 1 {
			extra = len(done[1])
		}
		for tries := 0; len(c.deps) < spec.RefsPerComponent && tries < 4*spec.RefsPerComponent; tries++ {
			d := rng.IntN(len(done[0]) + extra)
			if d < extra {
				d = done[1][d]
			} else {
				d = done[0][d-extra]
			}
			if !slices.Contains(c.deps, d) {
				c.deps = append(c.deps, d)
			}
		}
	}
	return comps
}

// config builds the env file of comps[i]: ~300-600 bytes once indented.
func config(rng *rand.Rand, env string, comps []comp, i int, st *Stats) map[string]any {
	c := &comps[i]
	cfg := map[string]any{
		"name":        env + "-" + c.nick,
		"description": c.typ + " for " + words[i%len(words)],
		"tags":        map[string]any{"Environment": env, "CostCenter": fmt.Sprintf("cc-%04d", rng.IntN(10000))},
		"capacity": map[string]any{"instance_type": sizes[rng.IntN(len(sizes))],
			"scaling": map[string]any{"max": 2 + rng.IntN(20)}},
		"allowed_cidrs": []any{fmt.Sprintf("10.%d.0.0/16", rng.IntN(256))},
		"user_data":     "#!/bin/sh\necho ${HOSTNAME}", // not a Karma reference
	}
	karma, envVars := map[string]any{}, map[string]any{}
	if i%40 == 3 {
		karma["extends"] = c.typ + "/defaults"
	}
	var dependsOn, attachments []any
	for j, d := range c.deps {
		t := &comps[d]
		st.References++
		st.Edges++
		switch rng.IntN(3) {
		case 0: // *_nickname key: the first at top level, the others in an attachments array
			key := strings.ReplaceAll(t.typ, "-", "_") + "_nickname"
			if j == 0 {
				cfg[key] = t.nick
			} else {
				attachments = append(attachments, map[string]any{key: t.nick, "mode": "read"})
			}
		case 1:
			if rng.IntN(4) == 0 {
				dependsOn = append(dependsOn, map[string]any{"ref": t.ref(), "consumes": []any{"arn"}})
			} else {
				dependsOn = append(dependsOn, t.ref())
			}
		default:
			key := runtimeKeys[rng.IntN(len(runtimeKeys))]
			envVars[fmt.Sprintf("DEP_%d_%s", j, strings.ToUpper(key))] = "${" + t.ref() + ".runtime." + key + "}"
		}
		if j == 0 && rng.IntN(4) == 0 { // a second reference to the same dependency: same edge
			st.References++
			envVars["UPSTREAM_ENDPOINT"] = "https://${" + t.ref() + ".runtime.endpoint}/v1"
		}
	}
	if len(dependsOn) > 0 {
		karma["depends_on"] = dependsOn
	}
	for k, v := range map[string]any{"karma": karma, "environment": envVars} {
		if len(v.(map[string]any)) > 0 {
			cfg[k] = v
		}
	}
	if len(attachments) > 0 {
		cfg["attachments"] = attachments
	}
	return cfg
}
