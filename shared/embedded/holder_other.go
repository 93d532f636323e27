//go:build !linux && !darwin

package embedded

// processStart cannot inspect processes here: holders' states are unknown and their leases run
// out by themselves.
func processStart(int) (string, error) { return "", errUnsupported }

// pidNamespace is "": processes are not inspected here.
func pidNamespace() string { return "" }
