package neptune

import (
	"testing"
	"time"

	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/lineage/lineagetest"
	"github.com/usekarma/karma/shared/message"
)

func TestLineageConformance(t *testing.T) {
	c := testClient(t)
	lineagetest.Run(t, func(t *testing.T) lineage.Store {
		return NewLineageStore(c, StoreOptions{Namespace: testNamespace(t, c)})
	})
}

func lineageDeployment(id, component string) lineage.Deployment {
	return lineage.Deployment{ID: id, ChangeSetID: "cs-" + id, Env: "prod", Component: component,
		CausedBy: []message.Cause{{Kind: message.CauseCommit, ID: "sha"}}, Status: lineage.StatusScheduled,
		At: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}
