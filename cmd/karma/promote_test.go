package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/changeset"
)

// promoteCommit commits, on the deployed demo repository, the promotion order and a change of
// the vpc base layer (dev and prod both get it), and ingests it auto-approved; it returns the
// change id.
func promoteCommit(t *testing.T, g *globals, order string, edit func()) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(g.repo, "karma.json"), []byte(`{"prefix": "/iac", "modules_dir": "components", "promotion": `+order+`}`), 0o644); err != nil {
		t.Fatal(err)
	}
	editJSON(t, filepath.Join(g.repo, "iac", "_base", "vpc", "core", "config.json"), func(d map[string]any) { d["enable_ssm_endpoints"] = true })
	if edit != nil {
		edit()
	}
	commitAs(t, g.repo, "Ada", "vpc: SSM endpoints, dev first")
	out := runIn(t, g, 0, "ingest", "commit", "--auto-approve")
	m := regexp.MustCompile(`-> change (\S+) queued`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no change id in %s", out)
	}
	return m[1]
}

func deployedDemo(t *testing.T) *globals {
	t.Helper()
	repo, state := demoRepo(t)
	g := &globals{paramsBackend: "embedded", repo: repo, stateDir: state}
	runIn(t, g, 0, "ingest", "commit", "--auto-approve")
	runIn(t, g, 0, "apply", "--auto-approve")
	return g
}

func changeSetByID(t *testing.T, state, id string) *changeset.ChangeSet {
	t.Helper()
	for _, cs := range changeSets(t, state) {
		if cs.ID == id {
			return cs
		}
	}
	return nil
}

func ssmEndpoints(t *testing.T, cs *changeset.ChangeSet, comp string) bool {
	t.Helper()
	n := cs.Nodes[comp]
	if n == nil || n.Outcome == nil {
		t.Fatalf("%s did not apply %s", cs.ID, comp)
	}
	var cfg map[string]any
	if err := json.Unmarshal(n.Outcome.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg["enable_ssm_endpoints"] == true
}

// dev → prod with a soak of 300 ms in dev and an approval gate in prod: the commit deploys in
// dev; prod starts only once the soak is over (at the next karma plan) and waits for its
// approval although the commit was auto-approved; karma promote approves it; the lineage says
// "promoted from" dev's change set.
func TestPromotionDevToProdWithSoakAndApproval(t *testing.T) {
	needTerraform(t)
	g := deployedDemo(t)
	change := promoteCommit(t, g, `[{"env": "dev", "soak": "300ms"}, {"env": "prod", "approval": true}]`, nil)
	devID, prodID := change+"/dev", change+"/prod"
	out := runIn(t, g, 0, "apply", "--auto-approve")
	mustContain(t, "apply in dev", out, "change "+devID+" [dev]", "promotion: soaking until ")
	if cs := changeSetByID(t, g.stateDir, prodID); cs != nil {
		t.Fatalf("prod started with dev: %s", changeState(cs))
	}
	mustContain(t, "status while soaking", runIn(t, g, 0, "promote", "status", change),
		"> dev      soaking ", "soak of 300ms, until ", "  prod     waiting ", "karma promote "+change+" --reason")

	dev := changeSetByID(t, g.stateDir, devID)
	if !ssmEndpoints(t, dev, "dev/vpc/core") || dev.Promotion.DueAt.IsZero() {
		t.Fatalf("dev: %s, due %v", changeState(dev), dev.Promotion.DueAt)
	}
	time.Sleep(time.Until(dev.Promotion.DueAt)) // the soak, as configured
	out = runIn(t, g, 0, "plan")
	mustContain(t, "plan after the soak", out, "promotion: "+devID+" succeeded (its soak is over) -> change set "+prodID+" starts in prod",
		"change "+prodID+" [prod] git:", "waiting for approval")
	prod := changeSetByID(t, g.stateDir, prodID)
	if prod == nil || prod.PromotedFrom != devID || prod.AutoApprove || prod.Approved || prod.CreatedAt.Before(dev.Promotion.DueAt) {
		t.Fatalf("prod: %+v; want promoted from dev after the soak (%v), waiting for an approval", prod, dev.Promotion.DueAt)
	}
	mustContain(t, "status at prod's gate", runIn(t, g, 0, "promote", "status", change),
		"  dev      applied ", "> prod     approval ", "wait for an approval", "next: karma promote "+change)

	mustContain(t, "a reason where there is no soak", runIn(t, g, 2, "promote", change, "--reason", "x"),
		"--reason ends a soak, and change "+change+" is not soaking: in prod it is approval")
	out = runIn(t, g, 0, "promote", change, "--auto-approve", "--as", "grace")
	mustContain(t, "promote through the approval", out, "plans of change "+prodID, "prod/vpc/core", "the promotion is complete")
	prod = changeSetByID(t, g.stateDir, prodID)
	if !ssmEndpoints(t, prod, "prod/vpc/core") || prod.ApprovedBy != "grace" {
		t.Errorf("prod: %s, approved by %q", changeState(prod), prod.ApprovedBy)
	}
	mustContain(t, "lineage", runIn(t, g, 0, "lineage", "vpc/core", "--env", "prod"),
		"<- promoted from change set "+devID+" [dev], which applied successfully", "<- root: commit ")
	mustContain(t, "audit", runIn(t, g, 0, "audit", "log", "--correlation", change),
		"promoted from "+devID+" (dev, after a soak of 300ms)")
}

// A soak is ended early only with a reason, recorded with who gave it.
func TestPromoteEndsASoakWithAReason(t *testing.T) {
	needTerraform(t)
	g := deployedDemo(t)
	change := promoteCommit(t, g, `[{"env": "dev", "soak": "1h"}, {"env": "prod"}]`, nil)
	runIn(t, g, 0, "apply", "--auto-approve")
	mustContain(t, "promote without a reason", runIn(t, g, 2, "promote", change), "soaks in dev until", "--reason says why")
	// a blank reason is no reason: refused as none, the soak goes on and nothing is recorded
	mustContain(t, "promote with a blank reason", runIn(t, g, 2, "promote", change, "--reason", "  ", "--as", "grace"), "soaks in dev until", "--reason says why")
	if dev := changeSetByID(t, g.stateDir, change+"/dev"); dev == nil || dev.Promotion.SoakSkipped != nil {
		t.Fatalf("a blank reason ended the soak: %+v", dev)
	}
	out := runIn(t, g, 0, "promote", change, "--reason", "verified in dev by hand", "--as", "grace")
	mustContain(t, "promote with a reason", out, "soak ended early by grace: verified in dev by hand", "the promotion is complete")
	if !ssmEndpoints(t, changeSetByID(t, g.stateDir, change+"/prod"), "prod/vpc/core") {
		t.Error("prod did not deploy the change")
	}
	mustContain(t, "audit", runIn(t, g, 0, "audit", "log", "--correlation", change), "soak skipped by grace: verified in dev by hand")
}

// A failure in dev stops the promotion there: prod never starts, status and promote say where
// and why; once the failure is run again successfully, the promotion goes on.
func TestAFailureInDevStopsThePromotion(t *testing.T) {
	needTerraform(t)
	g := deployedDemo(t)
	flag := filepath.Join(t.TempDir(), "quota-exceeded")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	change := promoteCommit(t, g, `[{"env": "dev"}, {"env": "prod"}]`, func() {
		module := filepath.Join(g.repo, "components", "vpc", "main.tf")
		src, _ := os.ReadFile(module)
		failing := strings.ReplaceAll(quotaModule, "[local.zone_id, try(var.config.comment, \"\")]", "[try(var.config.quota_flag, \"\")]")
		os.WriteFile(module, append(src, failing...), 0o644)
		editJSON(t, filepath.Join(g.repo, "components", "vpc", "config.schema.json"), func(d map[string]any) {
			d["properties"].(map[string]any)["quota_flag"] = map[string]any{"type": "string"}
		})
		editJSON(t, filepath.Join(g.repo, "iac", "dev", "vpc", "core", "config.json"), func(d map[string]any) { d["quota_flag"] = flag })
	})
	devID := change + "/dev"
	runIn(t, g, 1, "apply", "--auto-approve")
	failed := changeSetByID(t, g.stateDir, devID).Nodes["dev/vpc/core"]
	if failed.State != changeset.Failed {
		t.Fatalf("dev/vpc/core %s, want failed", failed.State)
	}
	where := "in dev: dev/vpc/core failed (" + failed.DeploymentID + "): apply: terraform apply dev/vpc/core: exit status 1"
	mustContain(t, "status", runIn(t, g, 0, "promote", "status", change), "> dev      stopped ", "  prod     not reached ",
		"the promotion stopped "+where)
	mustContain(t, "promote", runIn(t, g, 1, "promote", change), "the promotion stopped "+where)
	runIn(t, g, 0, "plan")
	if changeSetByID(t, g.stateDir, change+"/prod") != nil {
		t.Fatal("prod started after a failure in dev")
	}
	os.Remove(flag)
	runIn(t, g, 0, "retry", failed.DeploymentID)
	runIn(t, g, 0, "apply", "--auto-approve")
	mustContain(t, "status after the retry", runIn(t, g, 0, "promote", "status", change), "the promotion is complete")
}

// A change of the vpc base layer soaks in dev while prod moves on: a hotfix of prod's zone,
// committed after it, deploys in prod at once. The change's promotion cannot be built at its
// own commit (that would undo the hotfix), so it is built at the hotfix's tree — which is right
// while that tree holds nothing else for dev first, and wrong when another change of the base
// layer, still soaking in dev, was committed in between: then the promotion is held, on the
// record, and prod's vpc deploys nothing of either — until that change went through dev: then
// the held promotion is tried again by itself, and deploys at the hotfix's tree.
func TestAPromotionIsHeldRatherThanBuiltAtATreeWithUntestedCommits(t *testing.T) {
	needTerraform(t)
	for _, between := range []bool{false, true} {
		g := deployedDemo(t)
		change := promoteCommit(t, g, `[{"env": "dev", "soak": "1h"}, {"env": "prod"}]`, nil)
		runIn(t, g, 0, "apply", "--auto-approve")
		later := ""
		if between {
			// a field prod inherits (a field prod overrides, az_count, would change nothing there)
			editJSON(t, filepath.Join(g.repo, "iac", "_base", "vpc", "core", "config.json"), func(d map[string]any) {
				d["tags"].(map[string]any)["Owner"] = "network"
			})
			commitAs(t, g.repo, "Bob", "vpc: owned by network, dev first")
			m := regexp.MustCompile(`-> change (\S+) queued`).FindStringSubmatch(runIn(t, g, 0, "ingest", "commit", "--auto-approve"))
			if m == nil {
				t.Fatal("no change id for the change in between")
			}
			later = m[1]
			runIn(t, g, 0, "apply", "--auto-approve")
		}
		editJSON(t, filepath.Join(g.repo, "iac", "prod", "route53-zone", "main", "config.json"), func(d map[string]any) { d["comment"] = "hotfix" })
		hotfix := commitAs(t, g.repo, "Cy", "prod zone: hotfix")
		runIn(t, g, 0, "ingest", "commit", "--auto-approve")
		runIn(t, g, 0, "apply", "--auto-approve")

		prodID := change + "/prod"
		if !between {
			mustContain(t, "promote over a hotfix", runIn(t, g, 0, "promote", change, "--reason", "hotfix verified", "--as", "grace"),
				"the promotion is complete")
			prod := changeSetByID(t, g.stateDir, prodID)
			if prod.Commit != hotfix || !ssmEndpoints(t, prod, "prod/vpc/core") {
				t.Errorf("prod built from %.12s (want the hotfix's tree %.12s): %s", prod.Commit, hotfix, changeState(prod))
			}
			continue
		}
		out := runIn(t, g, 1, "promote", change, "--reason", "verified in dev", "--as", "grace")
		mustContain(t, "promote over untested commits", out, "promotion held", hotfix[:12])
		prod := changeSetByID(t, g.stateDir, prodID)
		if prod == nil || prod.Held == nil || prod.Rejected != "" || len(prod.Nodes) != 0 || prod.Commit != "" {
			t.Fatalf("prod: %+v; want the promotion held, nothing built", prod)
		}
		mustContain(t, "status", runIn(t, g, 0, "promote", "status", change), "held", "promotion held", "tried again by itself")
		mustContain(t, "audit", runIn(t, g, 0, "audit", "log", "--correlation", change), "promotion held")

		// The change in between goes through dev (its soak ended early) and on into prod: what
		// held the first one has been through dev, and its promotion is tried again, by itself.
		mustContain(t, "the change in between", runIn(t, g, 0, "promote", later, "--reason", "verified in dev too", "--as", "grace"), "the promotion is complete")
		mustContain(t, "status after", runIn(t, g, 0, "promote", "status", change), "the promotion is complete", prodID+"@2")
		again := changeSetByID(t, g.stateDir, prodID+"@2")
		if again == nil || again.Commit != hotfix || again.HeldBefore != prodID || !ssmEndpoints(t, again, "prod/vpc/core") {
			t.Errorf("the second try: %+v; want built at the hotfix's tree %.12s, deploying the change", again, hotfix)
		}
	}
}

// A change of the vpc base layer soaks in dev when a hotfix of prod's vpc is committed after it.
// Built at its own tree, the hotfix would deploy the base layer's change in prod with its own,
// before the soak, under the hotfix's name: it is held instead, nothing of it deployed, saying
// which change it waits for. Once that change went through dev (its soak ended early, on the
// record), the hotfix is tried again by itself and deploys, at its own tree.
func TestAHotfixIsHeldWhileABaseLayerChangeItCarriesSoaks(t *testing.T) {
	needTerraform(t)
	g := deployedDemo(t)
	change := promoteCommit(t, g, `[{"env": "dev", "soak": "1h"}, {"env": "prod"}]`, nil)
	runIn(t, g, 0, "apply", "--auto-approve")
	editJSON(t, filepath.Join(g.repo, "iac", "prod", "vpc", "core", "config.json"), func(d map[string]any) {
		d["tags"].(map[string]any)["Hotfix"] = "yes"
	})
	hotfix := commitAs(t, g.repo, "Cy", "prod vpc: hotfix")
	m := regexp.MustCompile(`-> change (\S+) queued`).FindStringSubmatch(runIn(t, g, 0, "ingest", "commit", "--auto-approve"))
	if m == nil {
		t.Fatal("no change id for the hotfix")
	}
	heldID := m[1] + "/prod"
	out := runIn(t, g, 1, "apply", "--auto-approve")
	mustContain(t, "apply of the hotfix", out, "held", change, "prod/vpc/core")
	held := changeSetByID(t, g.stateDir, heldID)
	if held == nil || held.Held == nil || len(held.Nodes) != 0 || held.Commit != "" {
		t.Fatalf("the hotfix: %+v; want it held, nothing built", held)
	}

	out = runIn(t, g, 0, "promote", change, "--reason", "verified in dev", "--as", "grace")
	mustContain(t, "promote", out, "the promotion is complete", "change set "+heldID+" was held in prod", heldID+"@2")
	again := changeSetByID(t, g.stateDir, heldID+"@2")
	if again == nil || again.Held != nil || again.Commit != hotfix || again.HeldBefore != heldID || !ssmEndpoints(t, again, "prod/vpc/core") {
		t.Fatalf("the second try: %+v; want it built at the hotfix's tree %.12s, deployed", again, hotfix)
	}
}

// The same with a base-layer change of a field prod overrides (cidr): prod's vpc resolves the
// same with or without it, so the hotfix carries nothing of it into prod and deploys at once.
func TestAHotfixIsNotHeldByABaseLayerChangeOfAFieldItOverrides(t *testing.T) {
	needTerraform(t)
	g := deployedDemo(t)
	if err := os.WriteFile(filepath.Join(g.repo, "karma.json"), []byte(`{"prefix": "/iac", "modules_dir": "components", "promotion": [{"env": "dev", "soak": "1h"}, {"env": "prod"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	editJSON(t, filepath.Join(g.repo, "iac", "_base", "vpc", "core", "config.json"), func(d map[string]any) { d["cidr"] = "10.9.0.0/16" })
	commitAs(t, g.repo, "Ada", "vpc: another default range, dev first")
	runIn(t, g, 0, "ingest", "commit", "--auto-approve")
	runIn(t, g, 0, "apply", "--auto-approve")
	editJSON(t, filepath.Join(g.repo, "iac", "prod", "vpc", "core", "config.json"), func(d map[string]any) {
		d["tags"].(map[string]any)["Hotfix"] = "yes"
	})
	hotfix := commitAs(t, g.repo, "Cy", "prod vpc: hotfix")
	m := regexp.MustCompile(`-> change (\S+) queued`).FindStringSubmatch(runIn(t, g, 0, "ingest", "commit", "--auto-approve"))
	if m == nil {
		t.Fatal("no change id for the hotfix")
	}
	runIn(t, g, 0, "apply", "--auto-approve")
	if cs := changeSetByID(t, g.stateDir, m[1]+"/prod"); cs == nil || cs.Held != nil || cs.Commit != hotfix || cs.Nodes["prod/vpc/core"] == nil {
		t.Fatalf("the hotfix: %+v; want it built at its tree %.12s", cs, hotfix)
	}
}
