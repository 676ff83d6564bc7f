package sink

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model"
)

func randString(rng *rand.Rand) string {
	alphabet := []string{"a", "Z", "0", "\"", "\\", "\n", "\t", "\x01", "<", "&", "é", "😀", "\u2028", "\xff", " ", "/"}
	var s string
	for range rng.IntN(12) {
		s += alphabet[rng.IntN(len(alphabet))]
	}
	return s
}

func randFloat(rng *rand.Rand) float64 {
	switch rng.IntN(6) {
	case 0:
		return 0
	case 1:
		return rng.NormFloat64() * 1e-9
	case 2:
		return rng.NormFloat64() * 1e25
	case 3:
		return math.Float64frombits(rng.Uint64() &^ (0x7ff << 52)) // subnormal-ish
	default:
		return rng.NormFloat64() * 10
	}
}

func TestAppendRecommendationMatchesJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		r := model.Recommendation{
			UserID: randString(rng), SessionID: randString(rng), ModelVersion: randString(rng),
			Partition: int32(rng.IntN(100)), Offset: rng.Int64(), TS: time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).UTC(),
		}
		if i%7 != 0 {
			r.Items = []model.Item{}
			for range rng.IntN(4) {
				r.Items = append(r.Items, model.Item{ItemID: randString(rng), Score: randFloat(rng), Propensity: randFloat(rng)})
			}
		}
		got, err := AppendRecommendation(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(r)
		if string(got) != string(want) {
			t.Fatalf("encoding differs:\n got %s\nwant %s", got, want)
		}
	}
}

func TestAppendRecommendationRejectsNaN(t *testing.T) {
	r := model.Recommendation{UserID: "u", Items: []model.Item{{ItemID: "i", Score: math.NaN()}}}
	if _, err := AppendRecommendation(nil, r); err == nil {
		t.Fatal("NaN score encoded")
	}
}

func BenchmarkRecommendationMessage(b *testing.B) {
	r := model.Recommendation{UserID: "u4242", SessionID: "u4242@1764324000", Partition: 3, Offset: 123456, ModelVersion: "popularity-17", TS: time.Now()}
	for i := range 10 {
		r.Items = append(r.Items, model.Item{ItemID: "m" + string(rune('0'+i)) + "318", Score: 12.5 / float64(i+1), Propensity: 1})
	}
	for b.Loop() {
		if _, err := RecommendationMessage(r); err != nil {
			b.Fatal(err)
		}
	}
}
