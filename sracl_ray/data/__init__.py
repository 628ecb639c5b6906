"""sracl_ray.data"""
