defmodule JidoSystem.Agents.Watcher do
  @moduledoc "Kills a process and waits for it to stop; the monitor is always dropped."

  def kill_and_await(pid, timeout) do
    ref = Process.monitor(pid)
    Process.exit(pid, :kill)

    receive do
      {:DOWN, ^ref, :process, ^pid, reason} -> {:ok, reason}
    after
      timeout ->
        Process.demonitor(ref, [:flush])
        {:error, Foundation.Error.new(:timeout, "still running")}
    end
  end
end
