package mongo_test

import (
	"os"
	"testing"

	"github.com/hustack/hustack/store/mongo/mongotest"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }
