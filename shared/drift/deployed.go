package drift

import (
	"encoding/json"

	"github.com/usekarma/karma/shared/changeset"
)

// Deployment is a component's last applied deployment, as its change set recorded it.
type Deployment struct {
	ID          string          // deployment id
	ChangeSetID string          // its change set
	Commit      string          // the commit its Terraform module came from (ChangeSet.ModuleCommit)
	Config      json.RawMessage // the resolved config it deployed (before interpolation)
	ConfigHash  string          // its canonical hash (model.Canonical)
	RuntimeHash string          // hex SHA-256 of the runtime it published
	Runtime     json.RawMessage // the runtime it published
	// RolledBackTo and GitConfigHash are set when it is the root of a rollback: the deployment
	// whose config it deployed again, and the hash of the config Git's head gave the component
	// then (changeset.Node.GitConfigHash; "" in change sets from before it was kept).
	RolledBackTo  string
	GitConfigHash string
}

// State is what the change sets say about the components of an environment: the last applied
// deployment of each, and which ones a change set is deploying now.
type State struct {
	Last map[string]Deployment // component id -> last applied deployment
	// Busy: component id -> the unfinished change set that has not settled it yet.
	Busy map[string]string
}

// StateOf reads env's components out of change sets listed newest first (changeset.Store.List).
func StateOf(sets []*changeset.ChangeSet, env string) State {
	st := State{Last: map[string]Deployment{}, Busy: map[string]string{}}
	for _, cs := range sets {
		if cs.Env != env {
			continue
		}
		// A change set a person rejected, that resolve found invalid, or that expired unapproved
		// deploys nothing more (resolve skips what is left of it when it gets there): what it
		// holds is not being deployed.
		done := cs.Done() || cs.RejectedBy != "" || cs.Rejected != "" || !cs.ExpiredAt.IsZero()
		for id, n := range cs.Nodes {
			if !done && !n.Settled() {
				if _, ok := st.Busy[id]; !ok {
					st.Busy[id] = cs.ID
				}
			}
			if _, ok := st.Last[id]; ok || n.State != changeset.Applied || n.Outcome == nil || n.Destroy {
				continue
			}
			// The module's commit: a rollback's root deploys the module of the commit it returns to.
			d := Deployment{ID: n.DeploymentID, ChangeSetID: cs.ID, Commit: cs.ModuleCommit(id), Config: n.Config, ConfigHash: n.ConfigHash,
				RuntimeHash: n.Outcome.RuntimeHash, Runtime: n.Outcome.Runtime}
			if n.Root && cs.Rollback != nil {
				d.RolledBackTo, d.GitConfigHash = cs.Rollback.DeploymentID, n.GitConfigHash
			}
			st.Last[id] = d
		}
	}
	return st
}
