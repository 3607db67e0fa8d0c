defmodule JidoSystem.Integration.StateRecoveryTest do
  use ExUnit.Case, async: true

  alias JidoSystem.Agents.{TaskAgent, Watcher}

  test "a crashed agent comes back with its state" do
    {:ok, pid} = TaskAgent.start_link([])
    Process.unlink(pid)
    :ok = TaskAgent.put(pid, :kept)
    assert {:ok, :killed} = Watcher.kill_and_await(pid, 1_000)
    {:ok, again} = TaskAgent.start_link([])
    assert TaskAgent.get(again) == :kept
  end
end
