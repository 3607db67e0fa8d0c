defmodule JidoSystem.CoordinatorTest do
  use ExUnit.Case, async: false

  test "coordinates" do
    Process.sleep(100)
    assert_receive {:telemetry, [:coordinator, :done], _, _}
  end
end
