defmodule JidoSystem.Agents.TaskAgent do
  use GenServer
  use JidoSystem.Agents.PersistentFoundationAgent

  def init(opts) do
    Process.put(:opts, opts)
    spawn(fn -> warm_up() end)
    {:ok, %{}}
  end

  defp warm_up, do: Process.get(:opts)
end
