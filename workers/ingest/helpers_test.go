package ingest_test

import (
	"testing"

	"github.com/usekarma/karma/shared/message"
	wt "github.com/usekarma/karma/workers/internal/workertest"
)

// The helpers every workers/* test package shares live in workers/internal/workertest.
var (
	update      = wt.Update
	examplesDir = wt.ExamplesDir
	validate    = wt.Validate
	validateAll = wt.ValidateAll
	fixedID     = wt.FixedID
	fixedTime   = wt.FixedTime
	fixedRoot   = wt.FixedRoot
	fixedDerive = wt.FixedDerive
	checkGolden = wt.CheckGolden
	byType      = wt.ByType
	quietLog    = wt.QuietLog
	newDB       = wt.NewDB
	process     = wt.Process
	writeRepo   = wt.WriteRepo
)

type repoGraphs = wt.RepoGraphs

func payloadOf[T any](t testing.TB, e message.Envelope) T { return wt.PayloadOf[T](t, e) }
