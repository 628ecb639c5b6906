"""sracl_ray.results"""
