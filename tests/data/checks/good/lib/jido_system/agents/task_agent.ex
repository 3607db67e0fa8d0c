defmodule JidoSystem.Agents.TaskAgent do
  @moduledoc "A supervised task agent whose state survives a crash."
  use GenServer
  use JidoSystem.Agents.PersistentFoundationAgent

  def start_link(opts), do: GenServer.start_link(__MODULE__, opts)

  def put(pid, value), do: GenServer.call(pid, {:put, value})
  def get(pid), do: GenServer.call(pid, :get)

  @impl true
  def init(_opts), do: {:ok, %{value: restore(__MODULE__, nil)}}

  @impl true
  def handle_call({:put, value}, _from, state) do
    {:reply, :ok, %{state | value: persist(__MODULE__, value)}}
  end

  def handle_call(:get, _from, state), do: {:reply, state.value, state}
end
