package cri

import "encoding/json"

// cri-api encodes KeyValue.Value as a JSON string, not base64 (its
// pre-1.34 form, which crictl configs use); this copy does the same.

type stringKeyValue struct {
	Key   string `json:"key,omitempty"`
	Value string `json:"value,omitempty"`
}

// MarshalJSON writes the value as a string.
func (k *KeyValue) MarshalJSON() ([]byte, error) {
	return json.Marshal(stringKeyValue{Key: k.GetKey(), Value: string(k.GetValue())})
}

// UnmarshalJSON reads the value as a string.
func (k *KeyValue) UnmarshalJSON(data []byte) error {
	var v stringKeyValue
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	k.Key, k.Value = v.Key, []byte(v.Value)
	return nil
}
