package app

import (
	"os"
	"runtime/debug"
)

// pipelineGCPercent is the garbage collector's target (GOGC) for a process that runs the
// pipeline's workers, unless the operator set GOGC. The workers' live heap is small (tens of
// MiB at BenchmarkPipeline's load) and most of what they allocate dies within one message, so
// collecting at 200 % growth instead of Go's default 100 % halves how often the collector runs:
// about 11 % less CPU per change event for 5-10 MiB more resident memory (docs/performance.md).
const pipelineGCPercent = 200

// tuneGC sets pipelineGCPercent unless the environment gives GOGC (which the Go runtime has
// applied already). It returns the target in force.
func tuneGC() int {
	if v, ok := os.LookupEnv("GOGC"); ok && v != "" {
		old := debug.SetGCPercent(100)
		debug.SetGCPercent(old)
		return old
	}
	debug.SetGCPercent(pipelineGCPercent)
	return pipelineGCPercent
}
