package stage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// DecodeConfig decodes a stage's config block (InitRequest.Config, JSON) into v strictly: a key v
// has no field for is an error, so a typo in the pipeline YAML fails the stage's Init instead of
// silently leaving a default. An absent or empty block leaves v as it is.
func DecodeConfig(raw []byte, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding config: %w", err)
	}
	if dec.More() {
		return errors.New("decoding config: more than one JSON value")
	}
	return nil
}
