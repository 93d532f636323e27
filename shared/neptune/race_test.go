//go:build race

package neptune

// raceDetector is set under -race. gremlin-go 3.7.3 writes a connection's state from its read
// loop without a lock while the pool reads it under another, so a connection dying under
// load is reported as a data race inside the driver (not in this package).
const raceDetector = true
