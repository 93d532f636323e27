//go:build !race

package neptune

const raceDetector = false
