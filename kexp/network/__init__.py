"""What a filter's numbers live in: the model builders with their named conv layers (models,
layers), the conv layers found at any depth (conv_layers), the initializers as theory without
Keras (initializers) and as Keras objects (keras_initializers), and saving the model (saving)."""
