defmodule JidoSystem.Agents.CoordinatorAgent do
  use GenServer

  def handle_call({:watch, pid}, _from, state) do
    ref = Process.monitor(pid)
    other = Process.monitor(state.peer)
    send(state.peer, {:watching, ref, other})
    {:reply, :ok, state}
  end

  def handle_call(:lookup, _from, state) do
    {:reply, {:error, :not_found}, state}
  end
end
