defmodule JidoSystem.Agents.CoordinatorAgentTest do
  use ExUnit.Case, async: true

  alias JidoSystem.Agents.CoordinatorAgent

  test "keeps a value" do
    pid = start_supervised!(CoordinatorAgent)
    assert :ok = CoordinatorAgent.put(pid, 41)
    assert CoordinatorAgent.get(pid) == 41
  end
end
