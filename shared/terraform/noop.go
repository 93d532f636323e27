package terraform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/usekarma/karma/shared/message"
)

// Noop is a Runner that runs no terraform and touches no files. It exists for benchmarks and
// fast tests of the pipeline only; nothing is deployed.
//
//   - Plan returns a summary of 1 add — one resource "terraform_data.noop" created, its "input"
//     the config's hash — or {no_op: 1} when the component's config (compared canonically: key
//     order and whitespace do not matter) is the one last applied by this Noop; the "plan file" is "noop:<env>/<type>/<nickname>@<config hash>" and the plan hash
//     is derived from the component and the config, so it is deterministic.
//
//   - Apply checks that ws.Config still gives plan.PlanHash (else ErrPlanChanged), records the
//     config as applied (in memory, per component) and returns outputs derived from the config:
//     "id" (the config's sha256, a JSON string) and, for each top-level config key k, "cfg_<k>"
//     with the key's value, or "(sensitive value)" when ws.Sensitive names it or a value in it
//     (a real module decides what it outputs; this one never echoes a secret).
//
//   - Refresh (Refresher) finds no drift: see its comment.
//
// All three honour ctx (a cancelled context gives an *Error with Permanent() false). The zero value
// is ready to use and safe for concurrent use.
type Noop struct {
	mu      sync.Mutex
	applied map[string]string // component id -> config hash
}

var (
	_ Runner    = (*Noop)(nil)
	_ Refresher = (*Noop)(nil)
)

// Refresh reports a component this Noop applied as deployed and unchanged (there is no real
// infrastructure to drift), and any other as not deployed.
func (n *Noop) Refresh(ctx context.Context, ws Workspace) (RefreshResult, error) {
	if err := ctx.Err(); err != nil {
		return RefreshResult{}, &Error{Op: OpRefresh, Component: ws.ID(), Err: err}
	}
	n.mu.Lock()
	_, applied := n.applied[ws.ID()]
	n.mu.Unlock()
	return RefreshResult{Deployed: applied}, nil
}

func (n *Noop) planOf(ws Workspace) (cfg map[string]json.RawMessage, cfgHash, planHash string, err error) {
	raw, err := configJSON(ws.Config)
	if err != nil {
		return nil, "", "", err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, "", "", err
	}
	canon, err := json.Marshal(v) // sorted keys, exact numbers
	if err != nil {
		return nil, "", "", err
	}
	if err := json.Unmarshal(canon, &cfg); err != nil {
		return nil, "", "", err
	}
	cfgHash = sha256hex(canon)
	planHash = sha256hex([]byte("noop\x00" + ws.ID() + "\x00" + cfgHash))
	return cfg, cfgHash, planHash, nil
}

// Plan fakes a plan; see Noop.
func (n *Noop) Plan(ctx context.Context, ws Workspace) (PlanResult, error) {
	if err := ctx.Err(); err != nil {
		return PlanResult{}, &Error{Op: OpPlan, Component: ws.ID(), Err: err}
	}
	_, cfgHash, planHash, err := n.planOf(ws)
	if err != nil {
		return PlanResult{}, &Error{Op: OpPrepare, Component: ws.ID(), Err: err}
	}
	n.mu.Lock()
	same := n.applied[ws.ID()] == cfgHash
	n.mu.Unlock()
	res := PlanResult{
		PlanFile: fmt.Sprintf("noop:%s@%s", ws.ID(), cfgHash[:16]),
		PlanHash: planHash,
	}
	if same {
		res.Summary = message.PlanSummary{NoOp: 1}
	} else {
		res.Summary = message.PlanSummary{Add: 1}
		res.Resources = []message.ResourceChange{{Address: "terraform_data.noop", Actions: []string{"create"},
			After: map[string]any{"id": UnknownValue, "input": cfgHash}}}
		res.HasChanges = true
	}
	return res, nil
}

// Apply fakes an apply; see Noop.
func (n *Noop) Apply(ctx context.Context, ws Workspace, plan PlanResult) (Outputs, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: OpApply, Component: ws.ID(), Err: err}
	}
	cfg, cfgHash, planHash, err := n.planOf(ws)
	if err != nil {
		return nil, &Error{Op: OpPrepare, Component: ws.ID(), Err: err}
	}
	if planHash != plan.PlanHash {
		return nil, &Error{Op: OpVerify, Component: ws.ID(), Err: fmt.Errorf("%w: the config gives plan %s, the reviewed plan is %s", ErrPlanChanged, planHash, plan.PlanHash)}
	}
	n.mu.Lock()
	if n.applied == nil {
		n.applied = map[string]string{}
	}
	n.applied[ws.ID()] = cfgHash
	n.mu.Unlock()
	out := make(Outputs, len(cfg)+1)
	for k, v := range cfg {
		out["cfg_"+k] = v
	}
	for _, ptr := range ws.Sensitive {
		if segs, err := pointerSegments(ptr); err == nil {
			if _, ok := cfg[segs[0]]; ok {
				out["cfg_"+segs[0]] = json.RawMessage(`"(sensitive value)"`)
			}
		}
	}
	id, _ := json.Marshal(cfgHash)
	out["id"] = id
	return out, nil
}
