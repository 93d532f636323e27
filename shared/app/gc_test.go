package app

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	debug.SetGCPercent(100)
	if got := tuneGC(); got != pipelineGCPercent {
		t.Errorf("tuneGC() without GOGC = %d, want %d", got, pipelineGCPercent)
	}
	if got := debug.SetGCPercent(100); got != pipelineGCPercent {
		t.Errorf("GC percent in force without GOGC = %d, want %d", got, pipelineGCPercent)
	}
	// The runtime applied an operator's GOGC at start; tuneGC leaves what is in force.
	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	if got := tuneGC(); got != 150 {
		t.Errorf("tuneGC() with GOGC=150 = %d, want 150", got)
	}
	if got := debug.SetGCPercent(100); got != 150 {
		t.Errorf("GC percent in force with GOGC=150 = %d, want 150", got)
	}
}
